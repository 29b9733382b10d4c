# Helpers shared by the scripts in bench/ (sourced, not run): finding or
# installing the program of a Debian package, free ports on 127.0.0.1, and
# stopping a process by its pid.

# Prints the first executable $1 found in the directories given after it, or
# on the PATH.
find_program() {
  local prog="$1" dir
  shift
  for dir in "$@"; do
    if [[ -x "$dir/$prog" ]]; then
      echo "$dir/$prog"
      return 0
    fi
  done
  command -v "$prog"
}

# apt-get install, waiting for another apt-get to finish, and fetching the
# package lists first when the packages are not known yet.
apt_install() {
  local opts=(-y -q -o DPkg::Lock::Timeout=300 --no-install-recommends)
  DEBIAN_FRONTEND=noninteractive apt-get install "${opts[@]}" "$@" ||
    { apt-get -q -o DPkg::Lock::Timeout=300 update && DEBIAN_FRONTEND=noninteractive apt-get install "${opts[@]}" "$@"; }
}

# Prints the path of program $1, from Debian package $2, looked for in the
# directories given after them and on the PATH. When it is missing, root
# installs the package with apt-get; anyone else is told the command.
#   ETCD="$(need_program etcd etcd-server)" || exit 2
need_program() {
  local prog="$1" pkg="$2"
  shift 2
  find_program "$prog" "$@" && return 0
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "$prog is not installed. On Debian/Ubuntu: sudo apt-get install $pkg" >&2
    return 2
  fi
  echo "$prog is not installed: installing Debian package $pkg with apt-get" >&2
  if ! apt_install "$pkg" >&2; then
    echo "apt-get could not install $pkg" >&2
    return 2
  fi
  find_program "$prog" "$@" && return 0
  echo "$pkg is installed but $prog is not found" >&2
  return 2
}

# Prints the first of $1 consecutive ports that are free on 127.0.0.1, picked
# at random in 20000..59999 so that runs side by side do not clash.
free_port_base() {
  node -e '
    const net = require("node:net");
    const count = Number(process.argv[1]);
    const free = (port) => new Promise((resolve) => {
      const s = net.createServer();
      s.once("error", () => resolve(false));
      s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
    });
    (async () => {
      for (let attempt = 0; attempt < 50; attempt++) {
        const base = 20000 + Math.floor(Math.random() * 40000);
        let ok = true;
        for (let i = 0; i < count && ok; i++) ok = await free(base + i);
        if (ok) return console.log(base);
      }
      console.error("no free port range on 127.0.0.1");
      process.exit(1);
    })();
  ' "$1"
}

# Sends signal $2 to process $1 and waits up to $3 seconds for it to end,
# then kills it. Reaps it when it is a child of this shell.
stop_pid() {
  local pid="$1" sig="$2" wait_s="$3" i
  kill "-$sig" "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  for ((i = 0; i < wait_s * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}
