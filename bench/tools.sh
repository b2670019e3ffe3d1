# Sourced by the gateway benchmarks: installs wrk and nginx (with Lua, for
# the shared fake upstream) from Debian's packages when missing.
need_wrk_and_nginx() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v nginx >/dev/null || missing+=(nginx-light libnginx-mod-http-lua)
  if ((${#missing[@]})); then
    local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}
