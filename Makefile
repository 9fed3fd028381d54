# mtl_perception: environment, tests and demo without a ROS 2 distribution (PyPI wheels).
# In a ROS 2 workspace use colcon instead (see README.md).
#
# ROS_DISTRO selects the ROS 2 wheels: kilted (the default) or jazzy, e.g.
# `make test ROS_DISTRO=jazzy`. Each distribution has its own venv (.venv, .venv-jazzy), pinned
# wheel list and vision_msgs build (inside the venv), so both environments live side by side.

PYTHON ?= python3
ifeq ($(strip $(ROS_DISTRO)),)
override ROS_DISTRO := kilted
endif
ifeq ($(ROS_DISTRO),kilted)
VENV ?= .venv
ROS_REQUIREMENTS := requirements-ros.txt
else ifeq ($(ROS_DISTRO),jazzy)
VENV ?= .venv-jazzy
ROS_REQUIREMENTS := requirements-ros-jazzy.txt
else
$(error ROS_DISTRO=$(ROS_DISTRO): the pip-wheels environment is built for kilted (default) or \
	jazzy; with another distribution build the package in a ROS 2 workspace (README.md))
endif
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
VM_BUILD := $(VENV)/build/vision_msgs
FASTDDS_PROFILE := $(CURDIR)/config/fastdds_localhost_shm.xml
DEMO_OUT ?= runs/demo

# Network safety: every ROS process started from here stays on loopback. Kilted honours the
# first variable and ignores the second; Jazzy honours both (the second, deprecated, wins and
# warns); Humble knows only the second. The FastDDS profile gives large images a shared-memory
# path and binds UDP to loopback; Fast DDS 3 (Kilted) reads it from the first profile variable,
# Fast DDS 2 (Jazzy, Humble) from the second.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_LOCALHOST_ONLY := 1
export FASTDDS_DEFAULT_PROFILES_FILE := $(FASTDDS_PROFILE)
export FASTRTPS_DEFAULT_PROFILES_FILE := $(FASTDDS_PROFILE)

.PHONY: setup test demo benchmark lint clean

setup: $(VENV)/.stamp-package

# The venv ignores itself (as Python 3.13's venv does), so git never picks it up.
$(PY):
	$(PYTHON) -m venv $(VENV)
	echo '*' > $(VENV)/.gitignore

# Runtime dependencies, test tools and the distribution's wheels; a changed list reinstalls.
$(VENV)/.stamp-deps: requirements.txt requirements-dev.txt $(ROS_REQUIREMENTS) | $(PY)
	$(PIP) install -r requirements.txt -r requirements-dev.txt -r $(ROS_REQUIREMENTS)
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
	$(VENV)/bin/mtl-perception demo --out $(DEMO_OUT)

benchmark: setup
	$(VENV)/bin/mtl-perception benchmark --json runs/benchmark.json

lint: setup
	$(PY) -m pytest -q test/test_flake8.py test/test_pep257.py test/test_copyright.py \
		test/test_xmllint.py

clean:
	rm -rf build runs

# Several cameras through one network (docs/results/README.md, "Multi-camera"): a two-camera
# synthetic flight (made once), then the shared node against a node (pair) per camera, and the
# shared node at segmentation_every 1, 3 and 10000, each in 3 alternating rounds on the CPU
# deployment path. About a quarter of an hour on a quiet 2-core machine.
MULTICAMERA_OUT ?= runs/multicamera
MULTICAMERA_CAMERAS ?= 2
MULTICAMERA_BAG := $(MULTICAMERA_OUT)/flight_$(MULTICAMERA_CAMERAS)cam
MULTICAMERA_REPLAY = $(VENV)/bin/mtl-perception replay --bag $(MULTICAMERA_BAG) \
	--backend onnxruntime --workers 2 --threads 1 --rate auto --utilization 0.5 \
	--max-seconds 20 --rounds 3

.PHONY: multicamera
multicamera: setup $(MULTICAMERA_BAG)/metadata.yaml
	$(MULTICAMERA_REPLAY) --config cameras --out $(MULTICAMERA_OUT)/cameras
	$(MULTICAMERA_REPLAY) --config segmentation_every --segmentation-every 1 3 10000 \
		--out $(MULTICAMERA_OUT)/segmentation_every

$(MULTICAMERA_BAG)/metadata.yaml: | setup
	$(VENV)/bin/mtl-perception synth --bag $(MULTICAMERA_BAG) --frames 300 --seed 0 \
		--cameras $(MULTICAMERA_CAMERAS) --overwrite --quiet

# The three demo models from scratch, with fixed seeds (README, "Reproducing the demo models"):
# render the train, val and test splits (config/train/synthetic_uav.yaml says which is which),
# train the multitask model and its two single-task twins side by side on the one recipe (a
# thread each; logs in $(MODELS_RUNS)/<name>.log), evaluate each on the test split into
# docs/results/accuracy/ and install it in models/. About 1 h 45 min on a 2-core machine (the
# three trainings took 86-96 minutes side by side).
MODELS_RUNS ?= runs/models
MODEL_RECIPE := config/train/synthetic_uav.yaml
DEMO_MODELS := uav_synthetic_multitask uav_synthetic_detection uav_synthetic_segmentation
MODEL_TASKS_uav_synthetic_multitask := [detection, segmentation]
MODEL_TASKS_uav_synthetic_detection := [detection]
MODEL_TASKS_uav_synthetic_segmentation := [segmentation]
SYNTH := $(VENV)/bin/mtl-perception synth --quiet
SPLIT_FILES := data/uav_train/annotations/instances_train.json \
	data/uav_train_flight/annotations/instances_train.json \
	data/uav_val/annotations/instances_val.json data/uav_val_flight/annotations/instances_val.json \
	data/uav_test/annotations/instances_test.json \
	data/uav_test_flight/annotations/instances_test.json
MODEL_FILES := $(foreach m,$(DEMO_MODELS),$(MODELS_RUNS)/$(m)/$(m).safetensors)

.PHONY: models
models: setup
	$(MAKE) --no-print-directory -j3 $(MODEL_FILES)
	mkdir -p docs/results/accuracy
	for m in $(DEMO_MODELS); do \
		for split in test:data/uav_test test_flight:data/uav_test_flight; do \
			$(VENV)/bin/mtl-perception evaluate --checkpoint $(MODELS_RUNS)/$$m/$$m.safetensors \
				--data $${split#*:} --split test --quiet $$([ $${split%%:*} = test ] && \
				echo --update-card) --json docs/results/accuracy/$${m}_$${split%%:*}.json \
				|| exit 1; \
		done; \
		cp $(MODELS_RUNS)/$$m/$$m.safetensors $(MODELS_RUNS)/$$m/$$m.yaml models/ || exit 1; \
	done

data/uav_train/annotations/instances_train.json: | setup
	$(SYNTH) --out data/uav_train --images 2000 --seed 1 --resize 320x240
data/uav_train_flight/annotations/instances_train.json: | setup
	$(SYNTH) --out data/uav_train_flight --style flight --images 1000 --seed 11 --resize 320x240
data/uav_val/annotations/instances_val.json: | setup
	$(SYNTH) --out data/uav_val --images 200 --seed 777 --split val
data/uav_val_flight/annotations/instances_val.json: | setup
	$(SYNTH) --out data/uav_val_flight --style flight --images 200 --seed 778 --split val
data/uav_test/annotations/instances_test.json: | setup
	$(SYNTH) --out data/uav_test --images 300 --seed 2027 --split test
data/uav_test_flight/annotations/instances_test.json: | setup
	$(SYNTH) --out data/uav_test_flight --style flight --images 300 --seed 2028 --split test

$(MODEL_FILES): $(MODELS_RUNS)/%.safetensors: $(SPLIT_FILES) $(MODEL_RECIPE) | setup
	@mkdir -p $(@D)
	@echo "training $(@F:.safetensors=) (log: $(@D).log)"
	$(VENV)/bin/mtl-perception train --config $(MODEL_RECIPE) --no-progress \
		--set name=$(@F:.safetensors=) --set 'tasks=$(MODEL_TASKS_$(@F:.safetensors=))' \
		--output $(@D) > $(@D).log 2>&1 || (tail -20 $(@D).log; exit 1)
	@grep -A3 '^trained' $(@D).log
