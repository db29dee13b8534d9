"""``python -m srm_models.ops``: build the compiled CPU kernels now and say whether they load."""
import logging

from . import cpu_kernels

if __name__ == "__main__":
    logging.basicConfig(format="%(message)s")
    logging.getLogger("srm_models").setLevel(logging.DEBUG)
    ready = cpu_kernels.load()
    print("SRM CPU kernels:", "ready" if ready else "unavailable (torch-op passes run instead)")
    raise SystemExit(0 if ready or not cpu_kernels.enabled() else 1)
