# shellcheck shell=bash
# Put this shell into the built dit4dit_ros environment:   source env.sh
#
# - activates the venv that `make setup` made (.venv, or $DIT4DIT_VENV)
# - ROS 2 from the ros-jazzy-* wheels: AMENT_PREFIX_PATH/CMAKE_PREFIX_PATH point at the venv
#   (rosidl and ament find their resources through them); with a system ROS 2, source it first
# - sources the workspace's install/setup.bash when the workspace has been built
# - ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST unless already set: DDS discovery stays on this machine.
#   For a real robot on another host, export ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET before sourcing.
# - the Fast DDS shared-memory profile for camera-sized messages (config/fastdds_shm_large.xml)
#   unless FASTRTPS_DEFAULT_PROFILES_FILE is already set.
_d4d_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
_d4d_venv="${DIT4DIT_VENV:-$_d4d_root/.venv}"

_d4d_prepend() {  # _d4d_prepend VAR DIR: put DIR first in VAR once
  local cur="${!1:-}"
  case ":$cur:" in *":$2:"*) ;; *) export "$1=$2${cur:+:$cur}" ;; esac
}

if [ -f "$_d4d_venv/bin/activate" ]; then
  _d4d_mode="$(cat "$_d4d_venv/.dit4dit-mode" 2>/dev/null || echo unknown)"
  # shellcheck disable=SC1091
  VIRTUAL_ENV_DISABLE_PROMPT="${VIRTUAL_ENV_DISABLE_PROMPT:-}" . "$_d4d_venv/bin/activate"
  case "$_d4d_mode" in
    wheels-*)
      export DIT4DIT_ROS_FROM_WHEELS=1
      _d4d_prepend AMENT_PREFIX_PATH "$_d4d_venv"
      _d4d_prepend CMAKE_PREFIX_PATH "$_d4d_venv"
      ;;
    system-*)
      if [ -z "${ROS_DISTRO:-}" ]; then
        echo "env.sh: this venv was set up against ROS 2 '${_d4d_mode#system-}'; source its setup.bash first" >&2
      fi
      ;;
  esac
else
  echo "env.sh: no virtual environment at $_d4d_venv yet; run 'make setup'" >&2
fi

if [ -f "$_d4d_root/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  . "$_d4d_root/install/setup.bash"
fi

export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export FASTRTPS_DEFAULT_PROFILES_FILE="${FASTRTPS_DEFAULT_PROFILES_FILE:-$_d4d_root/config/fastdds_shm_large.xml}"
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$FASTRTPS_DEFAULT_PROFILES_FILE}"
export DIT4DIT_ROOT="$_d4d_root"
# MuJoCo renders headless through EGL (Mesa llvmpipe on a CPU); GLFW would need a display.
export MUJOCO_GL="${MUJOCO_GL:-egl}"
unset -f _d4d_prepend
unset _d4d_root _d4d_venv _d4d_mode
