"""The OpenVINO backend: the ONNX export converted to OpenVINO IR, fp32, or NNCF int8 / int4 weight compression.

The IR is made once from the ONNX Runtime backend's fp32 export (``ov.convert_model``), compressed with
``nncf.compress_weights`` (int8: asymmetric per channel; int4: symmetric, group 64, causal LMs) and saved
in the derived cache with sha256. optimum-intel is not used: its releases pin transformers < 5.6 and pull a
CUDA torch. The CPU plugin runs with ``INFERENCE_PRECISION_HINT=f32`` (it would pick bf16 on AMX CPUs;
pinned so that cells compare the same arithmetic on every machine). Weight compression keeps activations
in float: int8/int4 weights save memory and bandwidth, not arithmetic.

Requests are served by :class:`evaluator.backends.onnxrt.ArrayLoaded` (the torch backend's tokenisation);
causal LMs keep the export's KV cache as explicit inputs and outputs (a stateless IR).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.backends.base import EMBEDDING, GENERATION, LOGLIKELIHOOD, Backend
from evaluator.backends.onnxrt import EXPORT_REVISION, INSTALL_HINT, ArrayLoaded, artefact, missing, onnx_fp32
from evaluator.errors import FrugalError

if TYPE_CHECKING:
    from evaluator.models import ModelSpec, ResolvedModel
    from evaluator.variants import Composite


def ov_ir(resolved: ResolvedModel, weights: str) -> tuple[Path, str]:
    """(model.xml, sha256 of model.bin) of the OpenVINO IR for ``weights`` (fp32 / int8 / int4), made once."""
    from evaluator.models import derived

    def build(tmp: Path) -> dict[str, Any]:
        import openvino as ov

        model = ov.convert_model(str(onnx_fp32(resolved)))
        made = "openvino.convert_model of the fp32 ONNX export"
        if weights in ("int8", "int4"):
            import nncf

            if weights == "int8":
                model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
                made += " + nncf.compress_weights(INT8_ASYM)"
            else:
                model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT4_SYM, group_size=64,
                                              ratio=1.0)
                made += " + nncf.compress_weights(INT4_SYM, group_size=64, ratio=1.0)"
        elif weights != "fp32":
            raise FrugalError(f"unknown OpenVINO weight format {weights!r}")
        ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)
        return {"made_with": made}

    folder, rec = derived(resolved, artefact(resolved, f"openvino-{weights}"), build)
    return folder / "model.xml", rec["files"]["model.bin"]["sha256"]


class OpenVinoBackend(Backend):
    """OpenVINO on CPU: fp32 IR, NNCF int8 / int4 weight compression."""

    name = "openvino"
    description = "OpenVINO (CPU): IR of the ONNX export, fp32 / NNCF int8 / int4 weights; needs extra 'runtimes'"
    capabilities = {"causal-lm": frozenset({LOGLIKELIHOOD, GENERATION}), "encoder": frozenset({EMBEDDING})}
    devices = ("cpu",)
    needs = ("openvino", "nncf", "onnx", "onnxscript", "onnxruntime")

    def __init__(self) -> None:
        self._threads = os.cpu_count() or 1

    def check(self, spec: ModelSpec, variant: Composite, device: str) -> None:
        """Refuse a missing runtime before anything loads."""
        super().check(spec, variant, device)
        lacking = missing(*self.needs)
        if lacking:
            raise FrugalError(f"backend {self.name!r} needs {', '.join(lacking)}, not installed: {INSTALL_HINT}")

    def load(self, resolved: ResolvedModel, variant: Composite, device: str) -> ArrayLoaded:
        """Convert and compress (once), compile for the CPU plugin in f32."""
        import openvino as ov

        from evaluator.variants import ModelInfo

        spec = resolved.spec
        variant.check(ModelInfo(spec.name, spec.kind, device))
        weights = variant.parts[0].weights
        xml, sha = ov_ir(resolved, weights)
        core = ov.Core()
        compiled = core.compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                        "INFERENCE_NUM_THREADS": self._threads,
                                                        "PERFORMANCE_HINT": "LATENCY"})
        outputs = [(o.get_any_name(), o) for o in compiled.outputs]
        request = compiled.create_infer_request()

        def infer(feed: dict[str, Any]) -> dict[str, Any]:
            res = request.infer(feed)
            return {name: res[port] for name, port in outputs}

        inputs = {p.get_any_name(): [d.get_length() if d.is_static else "?" for d in p.get_partial_shape()]
                  for p in compiled.inputs}
        return ArrayLoaded.create(self, resolved, device, infer, inputs, xml, sha, weights, compiled)

    def version(self) -> str:
        """OpenVINO's and NNCF's versions."""
        import nncf
        import openvino as ov

        return f"openvino {ov.__version__}, nncf {nncf.__version__}, frugal export r{EXPORT_REVISION}"

    def environment(self) -> dict[str, Any]:
        """Versions and the CPU plugin's device name."""
        if missing("openvino"):
            return {"openvino": None}
        import openvino as ov

        core = ov.Core()
        return {"openvino": ov.__version__, "openvino_cpu": core.get_property("CPU", "FULL_DEVICE_NAME")}

    def set_threads(self, n: int) -> int:
        """Inference threads of the models compiled after this call."""
        self._threads = max(1, int(n))
        return self._threads
