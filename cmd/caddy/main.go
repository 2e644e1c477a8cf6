// Command caddy is Caddy's own main with the tokengate module compiled in.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/tokengate/tokengate/plugin"
)

func main() {
	caddycmd.Main()
}
