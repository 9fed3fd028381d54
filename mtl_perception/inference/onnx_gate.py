# Copyright 2026 The mtl_perception Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
The segmentation gate: an exported multitask graph that computes its FCN head on demand.

ONNX Runtime runs every node of a graph whatever outputs a caller asks for, so a frame
that needs only the boxes would still pay for the segmentation head. ``add_gate`` moves
the nodes that only 'seg_logits' needs (its ancestors that 'loc' and 'scores' do not
need) into the then-branch of an ONNX ``If`` node whose condition is a bool scalar graph
input named ``SEGMENTATION_GATE``. The branch reads the backbone features and weights
from the outer graph, which ONNX allows. The else-branch emits zeros of the same shape
``[N, K, S, S]`` (N from ``Shape(images)``), because TensorRT needs equal output shapes
in both branches unless the condition is a build-time constant.

The gate has a default, an initializer of the same name holding True, so a consumer
that feeds only ``images`` gets every output as before; ONNX Runtime lists it under
``session.get_overridable_initializers()``, not ``get_inputs()``, and does not fold it
as a constant. TensorRT would fold it: ``runtime_gate_model`` removes the default so the
gate becomes a real engine input (``inference.tensorrt_build`` parses that model).

This module needs the ``onnx`` package, not torch.
"""

from collections import deque
from typing import Iterable

from mtl_perception.model_card import INPUT_NAME, SEGMENTATION_GATE, TASK_OUTPUTS
import onnx
from onnx import helper, TensorProto

__all__ = ['add_gate', 'gate_of', 'GateError', 'gated_nodes', 'runtime_gate_model',
           'SEGMENTATION_GATE']

SEGMENTATION_OUTPUT = TASK_OUTPUTS['segmentation'][0]
DETECTION_OUTPUTS = TASK_OUTPUTS['detection']
# Names of the values the gate adds; the suffix keeps them apart from exporter names.
_SUFFIX = '__segmentation_gate'


class GateError(ValueError):
    """The graph cannot be gated (outputs missing, shapes unknown, already gated)."""


def _ancestors(nodes: list, outputs: Iterable[str]) -> set[int]:
    """Return the indices of the nodes that ``outputs`` depend on (breadth first)."""
    producer = {name: index for index, node in enumerate(nodes)
                for name in node.output if name}
    seen: set[int] = set()
    queue = deque(producer[name] for name in outputs if name in producer)
    while queue:
        index = queue.popleft()
        if index in seen:
            continue
        seen.add(index)
        for name in _inputs_of(nodes[index]):
            if name in producer:
                queue.append(producer[name])
    return seen


def _inputs_of(node) -> set[str]:
    """Return every value ``node`` reads, including those its subgraphs read from outside."""
    names = {name for name in node.input if name}
    for attribute in node.attribute:
        graphs = list(attribute.graphs)
        if attribute.type == onnx.AttributeProto.GRAPH:
            graphs.append(attribute.g)
        for graph in graphs:
            inner = {name for n in graph.node for name in n.output}
            inner |= {i.name for i in graph.input} | {i.name for i in graph.initializer}
            names |= {name for n in graph.node for name in _inputs_of(n) if name not in inner}
    return names


def gated_nodes(graph) -> list:
    """
    Return the nodes only the segmentation output needs, in graph order.

    :param graph: an ungated ``onnx.GraphProto`` with outputs 'loc', 'scores', 'seg_logits'.
    """
    nodes = list(graph.node)
    seg = _ancestors(nodes, [SEGMENTATION_OUTPUT])
    det = _ancestors(nodes, DETECTION_OUTPUTS)
    return [node for index, node in enumerate(nodes) if index in seg and index not in det]


def gate_of(model) -> str | None:
    """Return the name of the segmentation gate input of ``model`` (None when ungated)."""
    names = {i.name for i in model.graph.input}
    return SEGMENTATION_GATE if SEGMENTATION_GATE in names else None


def _class_and_size(output, shape: tuple[int, int] | None) -> list[int]:
    """Return ``[K, S, S]`` of the ``[N, K, S, S]`` output, from ``shape`` or the graph."""
    dims = list(output.type.tensor_type.shape.dim)
    if len(dims) != 4:
        raise GateError(f'{SEGMENTATION_OUTPUT} must have rank 4 [N, K, S, S], got rank '
                        f'{len(dims)}')
    known = [d.dim_value if d.HasField('dim_value') else None for d in dims[1:]]
    if shape is None:
        if None in known:
            raise GateError(f'{SEGMENTATION_OUTPUT} needs a known shape [N, K, S, S] to '
                            f'gate, got {known}: pass shape=(K, S)')
        return known
    wanted = [int(shape[0]), int(shape[1]), int(shape[1])]
    if any(k is not None and k != w for k, w in zip(known, wanted)):
        raise GateError(f'{SEGMENTATION_OUTPUT} has shape [N, {known}] in the graph, not '
                        f'[N, {wanted}]')
    return wanted


def _zeros_branch(output, dims: list[int]):
    """Return the else-branch: float zeros ``[N, K, S, S]`` with N = ``images``' batch."""
    names = {key: f'{key}{_SUFFIX}' for key in
             ('shape', 'start', 'end', 'batch', 'rest', 'full', 'zeros')}
    nodes = [
        helper.make_node('Shape', [INPUT_NAME], [names['shape']]),
        helper.make_node('Constant', [], [names['start']],
                         value=helper.make_tensor('start', TensorProto.INT64, [1], [0])),
        helper.make_node('Constant', [], [names['end']],
                         value=helper.make_tensor('end', TensorProto.INT64, [1], [1])),
        helper.make_node('Slice', [names['shape'], names['start'], names['end']],
                         [names['batch']]),
        helper.make_node('Constant', [], [names['rest']],
                         value=helper.make_tensor('rest', TensorProto.INT64, [3], dims)),
        helper.make_node('Concat', [names['batch'], names['rest']], [names['full']], axis=0),
        helper.make_node('ConstantOfShape', [names['full']], [names['zeros']],
                         value=helper.make_tensor('zero', output.type.tensor_type.elem_type,
                                                  [1], [0])),
    ]
    result = onnx.ValueInfoProto()
    result.CopyFrom(output)
    result.name = names['zeros']
    return helper.make_graph(nodes, 'segmentation_skipped', [], [result])


def add_gate(model, shape: tuple[int, int] | None = None):
    """
    Return a copy of the exported multitask ``model`` with the segmentation head gated.

    :param model: an ``onnx.ModelProto`` with input ``images`` and outputs 'loc',
        'scores', 'seg_logits' ``[N, K, S, S]``, not yet gated.
    :param shape: ``(K, S)``, the segmentation classes and input side; needed when the
        graph leaves them symbolic (a dynamic-batch export does), checked otherwise. The
        output's declared shape becomes ``[N, K, S, S]``.
    :raises GateError: naming what is missing.
    """
    gated = onnx.ModelProto()
    gated.CopyFrom(model)
    graph = gated.graph
    outputs = {o.name: o for o in graph.output}
    missing = [n for n in (*DETECTION_OUTPUTS, SEGMENTATION_OUTPUT) if n not in outputs]
    if missing:
        raise GateError(f'cannot gate the segmentation head: outputs {missing} missing '
                        f'(the graph has {sorted(outputs)}); only multitask exports are gated')
    if gate_of(gated) is not None:
        raise GateError(f'the graph is already gated (it has the input {SEGMENTATION_GATE!r})')
    if INPUT_NAME not in {i.name for i in graph.input}:
        raise GateError(f'the graph has no input {INPUT_NAME!r}')
    output = outputs[SEGMENTATION_OUTPUT]
    dims = _class_and_size(output, shape)
    for dim, value in zip(list(output.type.tensor_type.shape.dim)[1:], dims):
        dim.dim_value = value  # replaces a symbolic dim_param
    moved = gated_nodes(graph)
    if not moved:
        raise GateError(f'no node computes only {SEGMENTATION_OUTPUT}: nothing to gate')
    # Inside the branch the head's last value gets a name of its own: ONNX names are
    # unique across a graph and its subgraphs, and the If node emits 'seg_logits'.
    inner_output = f'{SEGMENTATION_OUTPUT}{_SUFFIX}'
    branch_nodes = []
    for node in moved:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        for field in (copy.input, copy.output):
            for index, name in enumerate(field):
                if name == SEGMENTATION_OUTPUT:
                    field[index] = inner_output
        branch_nodes.append(copy)
    produced = {name for node in moved for name in node.output}
    then_output = onnx.ValueInfoProto()
    then_output.CopyFrom(output)
    then_output.name = inner_output
    then_branch = helper.make_graph(
        branch_nodes, 'segmentation_head', [], [then_output],
        value_info=[v for v in graph.value_info if v.name in produced])
    condition = helper.make_node(
        'If', [SEGMENTATION_GATE], [SEGMENTATION_OUTPUT], name=f'If{_SUFFIX}',
        then_branch=then_branch, else_branch=_zeros_branch(output, dims))
    moved_ids = {id(node) for node in moved}
    kept = [node for node in graph.node if id(node) not in moved_ids]
    kept_info = [v for v in graph.value_info if v.name not in produced]
    del graph.node[:]
    # Last: the branch reads outer values, which must all be computed before the If.
    graph.node.extend([*kept, condition])
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    graph.input.append(helper.make_tensor_value_info(SEGMENTATION_GATE, TensorProto.BOOL, []))
    # The default (True) makes the gate optional: feeding only images computes everything.
    graph.initializer.append(helper.make_tensor(SEGMENTATION_GATE, TensorProto.BOOL, [],
                                                [True]))
    return gated


def runtime_gate_model(model):
    """
    Return a copy of a gated ``model`` whose gate has no default (a required input).

    TensorRT's parser treats an initializer as a build-time constant and would keep only
    the then-branch; without it the gate is an engine input set per run.

    :raises GateError: the model is not gated.
    """
    if gate_of(model) is None:
        raise GateError(f'the model has no {SEGMENTATION_GATE!r} input: not gated')
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    kept = [t for t in copy.graph.initializer if t.name != SEGMENTATION_GATE]
    del copy.graph.initializer[:]
    copy.graph.initializer.extend(kept)
    return copy
