# Sourced by the gateway benchmarks: installs wrk and nginx (with Lua, for
# the shared fake upstream) from Debian's packages when missing.
need_wrk_and_nginx() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v nginx >/dev/null || missing+=(nginx-light)
  # checked on its own: nginx may be there without it
  [[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]] || missing+=(libnginx-mod-http-lua)
  if ((${#missing[@]})); then
    local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}
