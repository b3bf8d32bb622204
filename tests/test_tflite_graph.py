"""Reading .tflite files without TensorFlow: module paths from tensor names, analyzer reports, metadata."""

import pytest

from xformer.errors import ModelFileError
from xformer.export.tflite_graph import module_path, parse_analyzer_report, read_graph

ROOT = "xformer.export.tflite_litert.LogitsSignature"
NHWC = "xformer.export.deploy.ChannelsLastInput_model/xformer.models.xformer.XFormer_model"
ATTN = ("torch.nn.modules.container.Sequential_layer3/xformer.export.deploy.DeployXFormerBlock_1/"
        "torch.nn.modules.container.Sequential_transformer/xformer.export.deploy.DeployTransformerLayer_0/"
        "xformer.export.deploy.DeployXFA_attn")


@pytest.mark.parametrize("name, path", [
    (f"{ROOT}/{NHWC}/{ATTN};18", "layer3.1.transformer.0.attn"),
    (f"{ROOT}/xformer.models.xformer.XFormer_model/{ATTN}/torch.nn.modules.conv.Conv2d_proj;2",
     "layer3.1.transformer.0.attn.proj"),
    (f"{ROOT}/{NHWC}/xformer.export.deploy.ConvAct_head_conv/torch.nn.modules.activation.SiLU_act;",
     "head_conv.act"),
    (f"{ROOT}/{NHWC}/{ATTN};;{ROOT}/{NHWC}/xformer.export.deploy.ConvAct_stem;1", "layer3.1.transformer.0.attn"),
    (f"{ROOT}/{NHWC};3", ""),
    ("serving_default_image:0", None),
    ("model_334/tf.math.sigmoid_3/Sigmoid", None),
])
def test_module_path_from_litert_torch_tensor_names(name, path):
    assert module_path(name) == path


REPORT = """=== model.tflite ===

Subgraph#0 main(T#0) -> [T#9]
  Op#0 CONV_2D(T#0, T#1, T#2) -> [T#3]
  Op#1 GELU(T#3) -> [T#4]
GPU COMPATIBILITY WARNING: Not supported op GELU
  Op#2 CUSTOM(T#4) -> [T#5]
GPU COMPATIBILITY WARNING: Not supported custom op foo

GPU COMPATIBILITY WARNING: Subgraph#0 has GPU delegate compatibility issues at nodes 1, 2 on TFLite runtime
"""


def test_analyzer_report_names_each_incompatible_op():
    assert parse_analyzer_report(REPORT) == [
        {"index": 1, "op": "GELU", "reason": "Not supported op GELU"},
        {"index": 2, "op": "CUSTOM", "reason": "Not supported custom op foo"}]
    assert parse_analyzer_report("Your model looks compatible with GPU delegate") == []


def test_unreadable_flatbuffer():
    with pytest.raises(ModelFileError, match="not a readable TFLite flatbuffer"):
        read_graph(b"\x00" * 64)
