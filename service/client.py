"""A small HTTP client for the CLI: turns every failure into one readable line."""
from __future__ import annotations

from typing import Any

import httpx

from workers import settings

DEFAULT_URL = "http://127.0.0.1:8000"


class ClientError(Exception):
    """Something the CLI prints as a message (never a traceback)."""


def _describe(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    if isinstance(detail, list):  # validation errors: field and reason
        return "; ".join(f"{'.'.join(str(p) for p in item.get('loc', [])[1:]) or 'request'}: {item.get('msg')}"
                         for item in detail)
    return f"HTTP {response.status_code}: {detail}"


class Client:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30.0):
        configured = settings.current()
        self.url = (url or configured.api_url or DEFAULT_URL).rstrip("/")
        token = token or configured.api_token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise ClientError(f"cannot reach the SRM Bench API at {self.url} ({err}); "
                              "start it with `srm-bench serve` or pass --url") from err
        if response.status_code >= 400:
            raise ClientError(_describe(response))
        return response

    def submit(self, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", "/v1/jobs", json=body, headers=headers).json()

    def job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{job_id}").json()

    def jobs(self, **params: Any) -> dict[str, Any]:
        return self.request("GET", "/v1/jobs", params={k: v for k, v in params.items() if v is not None}).json()

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/v1/jobs/{job_id}").json()

    def results(self, job_id: str, fmt: str = "json", rope: float | None = None) -> Any:
        params = {"format": fmt} | ({"rope": rope} if rope is not None else {})
        response = self.request("GET", f"/v1/jobs/{job_id}/results", params=params)
        return response.json() if fmt == "json" else response.text

    def analyze(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"/v1/jobs/{job_id}/analyses", json=body).json()

    def analysis(self, analysis_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/analyses/{analysis_id}").json()

    def leaderboard(self, **params: Any) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/leaderboard", params={k: v for k, v in params.items() if v}).json()

    def report(self, job_id: str) -> str:
        return self.request("GET", f"/v1/jobs/{job_id}/report").text

    def plan(self, kind: str, item_id: str, effect: float) -> dict[str, Any]:
        """kind: jobs or studies."""
        return self.request("GET", f"/v1/{kind}/{item_id}/plan", params={"effect": effect}).json()

    def submit_study(self, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", "/v1/studies", json=body, headers=headers).json()

    def study(self, study_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/studies/{study_id}").json()

    def study_results(self, study_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/studies/{study_id}/results").json()

    def study_plot(self, study_id: str, name: str) -> bytes:
        return self.request("GET", f"/v1/studies/{study_id}/plots/{name}.png").content

    def health(self) -> dict[str, Any]:
        response = self.http.get("/healthz")
        return response.json()
