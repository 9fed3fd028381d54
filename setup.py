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

"""Build script for the mtl_perception ament_python package."""

from glob import glob
import os

from setuptools import find_packages, setup

package_name = 'mtl_perception'


def _files(pattern: str) -> list:
    return sorted(path for path in glob(pattern) if os.path.isfile(path))


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', _files('launch/*.launch.py')),
        ('share/' + package_name + '/config', _files('config/*')),
        ('share/' + package_name + '/config/train', _files('config/train/*')),
        ('share/' + package_name + '/models', _files('models/*')),
        ('share/' + package_name + '/interfaces/vision_msgs/msg',
         _files('interfaces/vision_msgs/msg/*.msg')),
    ],
    install_requires=[
        'setuptools',
        'numpy',
        'pillow',
        'PyYAML',
        'torch',
        'torchvision',
        'safetensors',
        'pycocotools',
        'onnx',
        'onnxruntime',
        'rosbags',
        'matplotlib',
        'tqdm',
        'psutil',
    ],
    extras_require={
        'test': ['pytest', 'pytest-timeout', 'torchmetrics'],
        'onnx-export': ['onnxscript'],
        # TensorRT engines (export --format tensorrt, backend tensorrt); JetPack ships
        # TensorRT. cuda-python's CUDA runtime bindings hold the engines' GPU memory; its
        # major version must not exceed the driver's CUDA (cuda-python<13 on CUDA 12).
        'tensorrt': ['tensorrt>=10', 'cuda-python>=12'],
        'tensorboard': ['tensorboard'],
    },
    zip_safe=True,
    maintainer='mtl_perception developers',
    maintainer_email='mtl-perception@example.com',
    description='Multitask detection + segmentation for UAVs as a ROS 2 package.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'multitask_node = mtl_perception.ros.main:multitask_main',
            'detection_node = mtl_perception.ros.main:detection_main',
            'segmentation_node = mtl_perception.ros.main:segmentation_main',
            'mtl-perception = mtl_perception.cli.main:main',
        ],
    },
)
