"""Rewrites of exported ONNX graphs that ONNX Runtime runs faster, same function.

:func:`rewrite_batched_einsums`: ``Einsum("bti,thi->bth", x, W)`` with ``W`` a weight (an
initializer), i.e. one Linear per token (EEGNetTransformer's 77 text heads), becomes
``Transpose -> MatMul(x_t, W^T) -> Transpose`` with ``W^T`` stored pre-transposed. ONNX Runtime's
CPU Einsum kernel re-lays out the (77, 512, 512) weight on every call (about 150 ms per trial for
the reference preset on this machine); the MatMul form runs a batched GEMM on the stored weight.
:func:`eegalign.onnx_export.export_onnx` checks the rewritten graph against PyTorch as before.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def _batched_linear_equation(equation: str) -> bool:
    """True for ``"bti,thi->bth"``-shaped equations: x (B, T, K), W (T, N, K) -> (B, T, N), distinct letters."""
    eq = equation.replace(" ", "")
    if "->" not in eq or eq.count(",") != 1:
        return False
    (x, w), out = eq.split("->")[0].split(","), eq.split("->")[1]
    if not (len(x) == len(w) == len(out) == 3 and len(set(x + w + out)) == 4):
        return False
    b, t, k = x
    return w[0] == t and w[2] == k and out == b + t + w[1] and len({b, t, k, w[1]}) == 4


def _replacement(node: Any, weight: np.ndarray, new_weight: str) -> list[Any]:
    from onnx import helper

    x, out, base = node.input[0], node.output[0], node.name or node.output[0]
    return [
        helper.make_node("Transpose", [x], [f"{base}/x_tbk"], perm=[1, 0, 2], name=f"{base}/T0"),  # (T, B, K)
        helper.make_node("MatMul", [f"{base}/x_tbk", new_weight], [f"{base}/y_tbn"], name=f"{base}/MatMul"),  # (T, B, N)
        helper.make_node("Transpose", [f"{base}/y_tbn"], [out], perm=[1, 0, 2], name=f"{base}/T1"),  # (B, T, N)
    ]


def rewrite_batched_einsums(path: str | os.PathLike) -> int:
    """Rewrite the per-token Linear einsums of the ONNX file at ``path`` in place; return how many."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes, count = [], 0
    for node in graph.node:
        eq = next((a.s.decode() for a in node.attribute if a.name == "equation"), "")
        if node.op_type != "Einsum" or len(node.input) != 2 or node.input[1] not in inits or not _batched_linear_equation(eq):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])  # (T, N, K)
        new_name = f"{node.input[1]}__tkn"
        if new_name not in inits:
            inits[new_name] = numpy_helper.from_array(np.ascontiguousarray(weight.transpose(0, 2, 1)), new_name)
            graph.initializer.append(inits[new_name])  # (T, K, N)
        nodes.extend(_replacement(node, weight, new_name))
        count += 1
    if count:
        used = {i for n in nodes for i in n.input}
        keep = [i for i in graph.initializer if i.name in used]
        del graph.node[:]
        graph.node.extend(nodes)
        del graph.initializer[:]
        graph.initializer.extend(keep)
        onnx.save(model, str(path))
    return count
