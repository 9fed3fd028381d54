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
"""Backbones and heads: feature maps, weight files, SSD and FCN heads on their own."""

from collections import OrderedDict

from mtl_perception.modeling.backbones import (
    build_backbone, feature_size, load_state_dict_file, MobileNetV3Backbone, ResNetBackbone)
from mtl_perception.modeling.fcn import bilinear_kernel, FCNHead, Upsample2x
from mtl_perception.modeling.ssd import L2Norm, SSDHead
import pytest
from safetensors.torch import save_file
import torch
import torchvision

CHANNELS = {
    'resnet18': {'C2': 64, 'C3': 128, 'C4': 256, 'C5': 512},
    'resnet34': {'C2': 64, 'C3': 128, 'C4': 256, 'C5': 512},
    'resnet50': {'C2': 256, 'C3': 512, 'C4': 1024, 'C5': 2048},
    'mobilenet_v3_large': {'C2': 24, 'C3': 40, 'C4': 112, 'C5': 960},
}


@pytest.mark.parametrize('name', sorted(CHANNELS))
def test_backbone_maps_and_strides(name):
    backbone = build_backbone(name).eval()
    assert backbone.out_channels == CHANNELS[name]
    with torch.no_grad():
        features = backbone(torch.zeros(1, 3, 100, 100))
    assert list(features) == ['C2', 'C3', 'C4', 'C5']
    for key, stride in (('C2', 4), ('C3', 8), ('C4', 16), ('C5', 32)):
        size = feature_size(100, stride)
        assert features[key].shape == (1, CHANNELS[name][key], size, size)
    assert [feature_size(300, s) for s in (8, 16, 32)] == [38, 19, 10]


def test_unknown_backbone():
    with pytest.raises(ValueError, match='resnet50'):
        build_backbone('vgg16')


def test_missing_weights_file_names_the_file(tmp_path):
    path = tmp_path / 'no_such_weights.safetensors'
    with pytest.raises(FileNotFoundError, match='no_such_weights.safetensors'):
        ResNetBackbone('resnet18', weights_path=str(path))


def test_loads_imagenet_state_dict_from_safetensors(tmp_path):
    torch.manual_seed(0)
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / 'resnet18.safetensors'
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    backbone = ResNetBackbone('resnet18', weights_path=str(path))
    assert torch.equal(backbone.conv1.weight, source.conv1.weight)
    assert torch.equal(backbone.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    assert not hasattr(backbone, 'fc')


def test_loads_torch_save_file_for_mobilenet(tmp_path):
    source = torchvision.models.mobilenet_v3_large(weights=None)
    with torch.no_grad():
        source.features[3].block[0][0].weight.fill_(0.25)
    path = tmp_path / 'mobilenet.pth'
    torch.save(source.state_dict(), str(path))
    backbone = MobileNetV3Backbone(weights_path=str(path))
    assert torch.all(backbone.features[3].block[0][0].weight == 0.25)
    assert load_state_dict_file(str(path)).keys() == source.state_dict().keys()


def test_mismatched_weights_file_raises(tmp_path):
    path = tmp_path / 'resnet34.safetensors'
    state = torchvision.models.resnet34(weights=None).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(ValueError, match='does not match'):
        ResNetBackbone('resnet18', weights_path=str(path))


def _features(channels, sizes, batch=2):
    names = ('C2', 'C3', 'C4', 'C5')[-len(sizes):]
    return OrderedDict((k, torch.randn(batch, channels[k], s, s)) for k, s in zip(names, sizes))


@pytest.mark.parametrize('sizes, sources, boxes', [
    ((38, 19, 10), (38, 19, 10, 5, 3, 1), 8732),
    ((64, 32, 16), (64, 32, 16, 8, 4, 2), 24528),
    ((16, 8, 4), (16, 8, 4, 2, 1, 1), 1536),
])
def test_ssd_head_layout(sizes, sources, boxes):
    channels = {'C3': 8, 'C4': 16, 'C5': 32}
    head = SSDHead(list(channels.values()), sizes, 5,
                   extra_channels=((8, 16), (8, 16), (8, 16))).eval()
    assert head.source_sizes == sources
    assert head.anchors.shape == (boxes, 4)
    assert 'anchors' not in head.state_dict()
    with torch.no_grad():
        loc, logits = head(_features(channels, sizes))
    assert loc.shape == (2, boxes, 4)
    assert logits.shape == (2, boxes, 6)


def test_ssd_head_rejects_wrong_map_size():
    channels = {'C3': 8, 'C4': 16, 'C5': 32}
    head = SSDHead(list(channels.values()), (16, 8, 4), 2,
                   extra_channels=((8, 16), (8, 16), (8, 16)))
    with pytest.raises(ValueError, match='does not match'):
        head(_features(channels, (32, 16, 8)))


def test_ssd_head_prediction_order_matches_anchors():
    # A conf layer that only fires for box 1 of the cell at row 2, column 3 of source 0
    # must land on the anchor of that cell and box.
    channels = {'C3': 4, 'C4': 4, 'C5': 4}
    head = SSDHead([4, 4, 4], (8, 4, 2), 1, extra_channels=((4, 4), (4, 4), (4, 4)))
    with torch.no_grad():
        for layer in head.conf_layers:
            layer.weight.zero_()
            layer.bias.zero_()
        # Channel layout of source 0 is box-major: box b, class c at b * 2 + c.
        head.conf_layers[0].bias[1 * 2 + 1] = 0.0
        features = _features(channels, (8, 4, 2), batch=1)
        features['C3'].zero_()
        head.conf_layers[0].weight[1 * 2 + 1, :, 1, 1] = 1.0
        features['C3'][0, :, 2, 3] = 1.0
        _, logits = head(features)
    hot = torch.nonzero(logits[0, :, 1] > 0).flatten().tolist()
    assert hot == [(2 * 8 + 3) * 4 + 1]
    assert head.anchors[hot[0], :2].tolist() == pytest.approx([3.5 / 8, 2.5 / 8])


def test_l2norm_initial_scale():
    norm = L2Norm(3)
    out = norm(torch.tensor([[3.0, 4.0, 0.0]]).view(1, 3, 1, 1))
    assert out.flatten().tolist() == pytest.approx([12.0, 16.0, 0.0])


def test_bilinear_upsampling_keeps_constant_maps():
    up = Upsample2x(2)
    assert torch.equal(up.deconv.weight, bilinear_kernel(2, 4))
    out = up(torch.ones(1, 2, 5, 5), (9, 9))
    assert out.shape == (1, 2, 9, 9)
    # Away from the zero-padded border bilinear upsampling of a constant is constant.
    assert torch.allclose(out[..., 1:-1, 1:-1], torch.ones(1, 2, 7, 7))


@pytest.mark.parametrize('variant', ['4s', '8s', '16s'])
@pytest.mark.parametrize('sizes, image', [((75, 38, 19, 10), 300), ((16, 8, 4, 2), 64)])
def test_fcn_head_shapes(variant, sizes, image):
    channels = {'C2': 6, 'C3': 8, 'C4': 16, 'C5': 32}
    head = FCNHead(channels, 4, variant=variant, mid_channels=8, c3_channels=4,
                   c2_channels=4).eval()
    with torch.no_grad():
        logits = head(_features(channels, sizes), (image, image))
    assert logits.shape == (2, 4, image, image)
    assert logits.dtype == torch.float32
    assert hasattr(head, 'score_c3') == (variant in ('4s', '8s'))
    assert hasattr(head, 'score_c2') == (variant == '4s')


def test_fcn_4s_skip_starts_at_zero_and_reaches_single_cells():
    """The C2 scores start at zero (training grows them in) and act within a few pixels."""
    torch.manual_seed(0)
    channels = {'C2': 6, 'C3': 8, 'C4': 16, 'C5': 32}
    fine = FCNHead(channels, 3, variant='4s', mid_channels=8, c3_channels=4,
                   c2_channels=4).eval()
    assert not fine.score_c2.weight.any() and not fine.score_c2.bias.any()
    features = _features(channels, (16, 8, 4, 2))
    bumped = {k: v.clone() for k, v in features.items()}
    bumped['C2'][:, :, 5, 7] += 10.0
    with torch.no_grad():
        assert torch.equal(fine(bumped, (64, 64)), fine(features, (64, 64)))
        torch.nn.init.normal_(fine.score_c2.weight)
        change = (fine(bumped, (64, 64)) - fine(features, (64, 64))).abs().sum(1)[0]
    rows, cols = torch.nonzero(change > 1e-4, as_tuple=True)
    # One stride-4 cell seen through the 3x3 context conv: at most 3x3 cells, i.e. 12 px.
    assert change[22, 30] > 0
    assert rows.max() - rows.min() < 16 and cols.max() - cols.min() < 16


def test_fcn_head_unknown_variant():
    with pytest.raises(ValueError, match='32s'):
        FCNHead({'C3': 8, 'C4': 16, 'C5': 32}, 4, variant='32s')
