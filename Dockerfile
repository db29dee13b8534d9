# One image for every SRM Bench role: API + dispatcher, Ray head, Ray GPU worker, MLflow server.
# Ray needs the same Python, Ray and code on the driver (API) and on every worker.
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /app
# A C++ compiler and ninja let srm_models build its CPU kernels (without them SRM runs slower).
RUN apt-get update && apt-get install -y --no-install-recommends g++ ninja-build \
    && rm -rf /var/lib/apt/lists/*
RUN pip install torch==2.14.1 torchvision==0.29.1 --index-url "${TORCH_INDEX_URL}"
COPY pyproject.toml README.md alembic.ini ./
COPY srm_models srm_models
COPY workers workers
COPY service service
COPY migrations migrations
# Editable, so service/db.py finds migrations/ beside the package.
RUN pip install -e ".[service]"

EXPOSE 8000
CMD ["srm-bench", "serve", "--host", "0.0.0.0", "--port", "8000"]
