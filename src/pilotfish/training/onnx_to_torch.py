"""Turn a dynamically int8-quantised BERT ONNX model back into a trainable transformers checkpoint.

The stronger packaged encoders (bge-small, the ms-marco-MiniLM-L12 cross-encoder) ship only as int8
ONNX. Their weights are recovered as ``(q - zero_point) * scale``, which is close enough to the
originals to fine-tune from; the rounding error is a starting point, not a result.

    from pilotfish.training.onnx_to_torch import dequantize_bert
    folder = dequantize_bert("ms-marco-l12", "base-l12")   # a BertForSequenceClassification folder
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError

# ONNX MatMulInteger outputs are named after the torch module, e.g.
# "/bert/encoder/layer.0/attention/self/query/MatMul_output_0_output_quantized".
_MODULE = re.compile(r"^/((?:bert/)?(?:encoder/layer\.\d+/[\w/]+?|pooler/dense))/MatMul")
_PREFIX = "bert."


def _weights(graph: Any) -> dict[str, Any]:
    """Parameter name (transformers' BertModel naming, no prefix) -> float32 numpy array, from an ONNX graph."""
    from onnx import numpy_helper

    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    # quantised weight -> the MatMulInteger output that names its module when the weight itself is anonymous
    matmul = {node.input[1]: node.output[0] for node in graph.node if node.op_type == "MatMulInteger"}
    weights: dict[str, Any] = {}
    for name, array in arrays.items():
        if name.endswith("_quantized"):
            stem = name[: -len("_quantized")]
            if name.startswith("onnx::"):
                match = _MODULE.match(matmul.get(name, ""))
                if not match:
                    continue
                key = match.group(1).replace("/", ".") + ".weight"
            else:
                key = stem.removesuffix("_Transposed")  # per-channel exports name the transposed copy
            q, scale, zero = array, arrays[f"{stem}_scale"], arrays[f"{stem}_zero_point"]
            value = (q.astype("float32") - zero.astype("float32")) * scale.astype("float32")
            # ONNX keeps MatMul weights as (in, out); torch's Linear stores (out, in).
            weights[key] = value.T.copy() if name in matmul else value
        elif array.dtype.kind == "f" and array.ndim >= 1 and not name.startswith("onnx::"):
            weights[name] = array.astype("float32")
    return {k[len(_PREFIX):] if k.startswith(_PREFIX) else k: v for k, v in weights.items()}


def _attention_heads(graph: Any, hidden: int) -> int | None:
    """Heads per layer, read from the first layer's reshape constants: a (heads, head size) pair whose
    product is the hidden size (HF exports spell out e.g. [12] then [32] for a 384-wide MiniLM)."""
    from onnx import numpy_helper

    values = []
    for node in graph.node:
        if node.op_type == "Constant" and "layer.0/attention/self/" in node.output[0] and node.attribute:
            value = numpy_helper.to_array(node.attribute[0].t)
            if value.size == 1 and value.dtype.kind == "i":
                values.append(int(value.reshape(-1)[0]))
    for heads, size in zip(values, values[1:]):
        if heads > 1 and size > 1 and heads * size == hidden:
            return heads
    return None


def dequantize_bert(model: str, out: str | Path, *, num_hidden_layers: int | None = None,
                    with_head: bool = False) -> Path:
    """Write registry model ``model`` (an int8 BERT ONNX folder) to OUT as a BERT checkpoint + tokenizer.

    The pooler is carried over when present. The classification head is too with ``with_head`` (a
    BertForSequenceClassification folder, e.g. to continue training ``nli-small``); otherwise the caller
    adds a new one.
    """
    import onnx
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    from pilotfish.models import model_path

    source = model_path(model)
    onnx_file = source / "model.onnx"
    if not onnx_file.is_file():
        raise ConfigError(f"{model} has no model.onnx at {source}: only ONNX BERT models can be dequantised")
    graph = onnx.load(str(onnx_file)).graph
    weights = _weights(graph)
    layers = num_hidden_layers or 1 + max(int(m.group(1)) for k in weights
                                          if (m := re.match(r"encoder\.layer\.(\d+)\.", k)))
    vocab, hidden = weights["embeddings.word_embeddings.weight"].shape
    # Exports that fold the reshape constants away leave only the width: BERT-family widths have fixed heads.
    heads = _attention_heads(graph, hidden) or {384: 12, 768: 12, 1024: 16}.get(hidden)
    if heads is None:
        raise ConfigError(f"{onnx_file}: could not read the number of attention heads from the graph")
    config = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads,
                        intermediate_size=weights["encoder.layer.0.intermediate.dense.weight"].shape[0],
                        max_position_embeddings=weights["embeddings.position_embeddings.weight"].shape[0],
                        type_vocab_size=weights["embeddings.token_type_embeddings.weight"].shape[0])
    bert = BertModel(config, add_pooling_layer=True)
    state = {k: torch.from_numpy(v) for k, v in weights.items() if k in bert.state_dict()}
    expected = {k for k in bert.state_dict() if not k.endswith("position_ids")}
    missing = sorted(expected - set(state) - {"pooler.dense.weight", "pooler.dense.bias"})
    if missing:
        raise ConfigError(f"{model}: could not recover {len(missing)} weights from the ONNX graph, "
                          f"e.g. {missing[:3]}; is it a BERT encoder?")
    bert.load_state_dict(state, strict=False)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if with_head:
        if "classifier.weight" not in weights or "pooler.dense.weight" not in weights:
            raise ConfigError(f"{model} has no classification head to carry over; train a new head instead")
        labels = weights["classifier.weight"].shape[0]
        config.num_labels = labels
        classifier = BertForSequenceClassification(config)
        classifier.bert.load_state_dict(bert.state_dict())
        classifier.classifier.weight.data = torch.from_numpy(weights["classifier.weight"])
        classifier.classifier.bias.data = torch.from_numpy(weights["classifier.bias"])
        bert = classifier
    bert.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (source / name).is_file():
            shutil.copy(source / name, out / name)
    (out / "dequantized_from.json").write_text(json.dumps({"model": model, "onnx": str(onnx_file.name)}) + "\n",
                                               encoding="utf-8")
    return out
