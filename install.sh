#!/usr/bin/env bash
# Set up meld_ros on a machine without ROS, in a virtual environment at .venv:
#
#   ./install.sh            # torch (pinned CPU wheel), meld_ros with the simulation extra
#   ./install.sh --test     # ... plus the test extra and the Debian packages the tests need
#
# torch is installed first and pinned, so pip never resolves it on its own (that pulls gigabytes
# of CUDA packages). Set MELD_TORCH to another requirement (e.g. a CUDA build) to override.
# Set MELD_NO_APT=1 to skip the Debian packages (then install them yourself; see README).
set -euo pipefail
cd "$(dirname "$0")"

want_test=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $arg (use --test)" >&2; exit 2 ;;
  esac
done

# Rendering (MuJoCo offscreen through EGL/OSMesa) for the simulation; URDF checker, AVR toolchain
# and simavr for the tests of the URDF and the reset-rig firmware.
apt_sim=(libegl1 libgl1-mesa-dri libosmesa6)
apt_test=(liburdfdom-tools gcc-avr avr-libc arduino-core-avr simavr libsimavr-dev libelf-dev)

need=("${apt_sim[@]}")
[ "$want_test" = 1 ] && need+=("${apt_test[@]}")
missing=()
for pkg in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ] && [ "${MELD_NO_APT:-0}" != 1 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "install.sh: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q "${MELD_TORCH:-torch==2.13.0}"
extras="sim"
[ "$want_test" = 1 ] && extras="sim,test"
.venv/bin/python -m pip install -q -e ".[$extras]"
echo "install.sh: ready. Activate with: source .venv/bin/activate"
