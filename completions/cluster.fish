# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_cluster_global_optspecs
    string join \n epmd-port= cookie= cookie-file= roles= v/verbose h/help V/version
end

function __fish_cluster_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_cluster_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_cluster_using_subcommand
    set -l cmd (__fish_cluster_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c cluster -n "__fish_cluster_needs_command" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_needs_command" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_needs_command" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_needs_command" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_needs_command" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_needs_command" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_needs_command" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_needs_command" -f -a "start" -d 'Run a node in the foreground'
complete -c cluster -n "__fish_cluster_needs_command" -f -a "ping" -d 'Ping nodes, like net_adm:ping/1; exits 0 only if every node answers pong'
complete -c cluster -n "__fish_cluster_needs_command" -f -a "monitor" -d 'Follow a node\'s nodeup/nodedown events'
complete -c cluster -n "__fish_cluster_needs_command" -f -a "requirements" -d 'Ask the beacon which providers a node\'s requirements have; exits 0 when all are online'
complete -c cluster -n "__fish_cluster_needs_command" -f -a "up" -d 'Start a local cluster (the beacon and one node per role) and follow it'
complete -c cluster -n "__fish_cluster_needs_command" -f -a "top" -d 'Watch a live cluster full-screen: nodes by role, readiness, connections, events'
complete -c cluster -n "__fish_cluster_needs_command" -f -a "epmd" -d 'Run the port mapper (an EPMD-compatible daemon), or query/stop one'
complete -c cluster -n "__fish_cluster_needs_command" -f -a "names" -d 'List the nodes registered with a host\'s port mapper'
complete -c cluster -n "__fish_cluster_needs_command" -f -a "roles" -d 'Validate the roles file and list its roles (or print the built-in one)'
complete -c cluster -n "__fish_cluster_needs_command" -f -a "forget" -d 'Remove offline nodes from the beacon\'s table'
complete -c cluster -n "__fish_cluster_needs_command" -f -a "doctor" -d 'Check what usually goes wrong (port mapper, names, cookie, ports, ticktime, beacon)'
complete -c cluster -n "__fish_cluster_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c cluster -n "__fish_cluster_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cluster -n "__fish_cluster_using_subcommand start" -l name -d 'The node\'s name, name@host (a long name when host has dots or is an IP)' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l role -d 'The node\'s role, as declared in the roles file (shown by `cluster names`)' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l net-ticktime -d 'Seconds of silence before a peer is declared down [default: roles file, else 60]' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l net-setuptime -d 'Seconds allowed for each handshake step' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l dist-port -d 'Distribution port or range, like inet_dist_listen_min/max [default: any free port]' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l listen -d 'Address to listen on [default: the address of the name\'s host; never 0.0.0.0 unless asked]' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l max-message-size -d 'Largest message accepted from a peer, in bytes; a larger one is refused alone (its caller gets an error) and the connection stays up' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l busy-limit -d 'Bytes queued to one peer before senders that wait are held back (like erl\'s +zdbbl)' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l receive-budget -d 'Bytes of large incoming messages buffered at once across all connections (raised to --max-message-size if lower)' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l threads -d 'Runtime threads. One (the default) runs the whole node on one thread: no wake-up ever crosses threads, which halves the cost of a message. More suit roles whose processes do heavy work of their own' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l spin -d 'Microseconds a busy node\'s threads poll its sockets before sleeping (like erl\'s +sbwt): a message then costs no wake-up. 0 never spins; an idle node never spins' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l beacon -d 'The beacon to register with [default: the roles file\'s beacon]' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l cookie-reject-timeout -d 'Seconds a role node goes on trying a beacon that rejects its cookie before it exits with an error (a wrong cookie does not fix itself)' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand start" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand start" -l no-epmd-start -d 'Do not start a port mapper when none is running'
complete -c cluster -n "__fish_cluster_using_subcommand start" -l no-auto-connect -d 'Do not connect automatically on send (like dist_auto_connect never)'
complete -c cluster -n "__fish_cluster_using_subcommand start" -l hidden -d 'Run as a hidden node (not in other nodes\' nodes())'
complete -c cluster -n "__fish_cluster_using_subcommand start" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand start" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand start" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand ping" -l timeout -d 'Seconds to wait for each node' -r
complete -c cluster -n "__fish_cluster_using_subcommand ping" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand ping" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand ping" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand ping" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand ping" -l json -d 'Print a JSON array instead of lines'
complete -c cluster -n "__fish_cluster_using_subcommand ping" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand ping" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand ping" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand monitor" -l count -d 'Exit 0 after this many events (members listed at the start do not count)' -r
complete -c cluster -n "__fish_cluster_using_subcommand monitor" -l duration -d 'Exit 0 after this many seconds' -r
complete -c cluster -n "__fish_cluster_using_subcommand monitor" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand monitor" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand monitor" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand monitor" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand monitor" -l json -d 'One JSON object per line'
complete -c cluster -n "__fish_cluster_using_subcommand monitor" -l all -d 'Show hidden nodes too (tools like this one connect as hidden nodes; by default their comings and goings are not shown)'
complete -c cluster -n "__fish_cluster_using_subcommand monitor" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand monitor" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand monitor" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand requirements" -l beacon -d 'The beacon [default: env CLUSTER_BEACON, then the roles file\'s beacon]' -r
complete -c cluster -n "__fish_cluster_using_subcommand requirements" -l wait -d 'Wait up to this many seconds for every requirement to have an online provider' -r
complete -c cluster -n "__fish_cluster_using_subcommand requirements" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand requirements" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand requirements" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand requirements" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand requirements" -l json -d 'Print JSON instead of a table'
complete -c cluster -n "__fish_cluster_using_subcommand requirements" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand requirements" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand requirements" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand up" -l host -d 'Host part of every node name' -r
complete -c cluster -n "__fish_cluster_using_subcommand up" -l only -d 'Start only these roles (comma-separated)' -r
complete -c cluster -n "__fish_cluster_using_subcommand up" -l per-role -d 'Nodes per role (`<role>1` … `<role>N`); the beacon is always one' -r
complete -c cluster -n "__fish_cluster_using_subcommand up" -l restart -d 'When to restart a node that exits' -r -f -a "on-failure\t'Unless it exited with status 0'
always\t'Whatever the exit status'
never\t'Never: report it and go on'"
complete -c cluster -n "__fish_cluster_using_subcommand up" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand up" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand up" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand up" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand up" -l stop-epmd -d 'Stop the port mapper too when `up` ends (by default it outlives `up`, as epmd outlives erl; it refuses to stop while other nodes are registered)'
complete -c cluster -n "__fish_cluster_using_subcommand up" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand up" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cluster -n "__fish_cluster_using_subcommand up" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand top" -l width -d 'Width of the --once frame' -r
complete -c cluster -n "__fish_cluster_using_subcommand top" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand top" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand top" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand top" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand top" -l once -d 'Print one frame as plain text and exit (for scripts, or when stdout is not a terminal)'
complete -c cluster -n "__fish_cluster_using_subcommand top" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand top" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand top" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -l port -d 'Port to listen on [default: --epmd-port]. 0 picks a free port (printed on stderr)' -r
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -l address -d 'Addresses to listen on, comma-separated; the IPv4 and IPv6 loopback addresses are always added. [default: every interface, IPv4 and IPv6, as epmd]' -r
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -l packet-timeout -d 'Seconds of silence after which a connection that has not sent its whole request is closed; every byte received starts the count again (epmd\'s -packet_timeout). As epmd, which counts whole seconds, a pause of exactly SECS is tolerated: the connection goes after SECS+1 seconds of silence' -r
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -l request-deadline -d 'Seconds a connection has, from its accept, to send its whole request however steadily it trickles (stops slow-drip clients; epmd has no such limit)' -r
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -l max-connections -d 'Most connections open at once (registered nodes included)' -r
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -l stop -d 'Forcibly unregister NAME (needs --relaxed-command-check on the port mapper)' -r
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -l daemon -d 'Detach and run in the background; exits 0 at once if a port mapper already serves the port'
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -l relaxed-command-check -d 'Allow KILL with nodes registered, and STOP (like epmd -relaxed_command_check)'
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -l kill -d 'Ask the running port mapper to exit (refused while nodes are registered, unless it runs with --relaxed-command-check)'
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -l dump -d 'Print the running port mapper\'s registered and remembered names, as `epmd -dump`'
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -l json -d 'With --dump: print the names as JSON'
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand epmd" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand names" -l host -d 'Host whose port mapper to ask' -r
complete -c cluster -n "__fish_cluster_using_subcommand names" -l timeout -d 'Seconds to wait for each answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand names" -l beacon -d 'Show the cluster-wide view from this beacon instead of one host\'s port mapper' -r
complete -c cluster -n "__fish_cluster_using_subcommand names" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand names" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand names" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand names" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand names" -l json -d 'Print a JSON array instead of a table'
complete -c cluster -n "__fish_cluster_using_subcommand names" -l cluster -d 'Like --beacon, with the beacon from CLUSTER_BEACON or the roles file'
complete -c cluster -n "__fish_cluster_using_subcommand names" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand names" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand names" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand roles" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand roles" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand roles" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand roles" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand roles" -l json -d 'Print the resolved file as JSON'
complete -c cluster -n "__fish_cluster_using_subcommand roles" -l default -d 'Print the built-in roles file (what is used when no roles file is found)'
complete -c cluster -n "__fish_cluster_using_subcommand roles" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand roles" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand roles" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand forget" -l beacon -d 'The beacon [default: env CLUSTER_BEACON, then the roles file\'s beacon]' -r
complete -c cluster -n "__fish_cluster_using_subcommand forget" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand forget" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand forget" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand forget" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand forget" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand forget" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand forget" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand doctor" -l beacon -d 'The beacon [default: env CLUSTER_BEACON, then the roles file\'s beacon]' -r
complete -c cluster -n "__fish_cluster_using_subcommand doctor" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand doctor" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand doctor" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand doctor" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand doctor" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand doctor" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand completions" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand completions" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand completions" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand completions" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand completions" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand completions" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand completions" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles forget doctor completions help" -f -a "start" -d 'Run a node in the foreground'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles forget doctor completions help" -f -a "ping" -d 'Ping nodes, like net_adm:ping/1; exits 0 only if every node answers pong'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles forget doctor completions help" -f -a "monitor" -d 'Follow a node\'s nodeup/nodedown events'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles forget doctor completions help" -f -a "requirements" -d 'Ask the beacon which providers a node\'s requirements have; exits 0 when all are online'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles forget doctor completions help" -f -a "up" -d 'Start a local cluster (the beacon and one node per role) and follow it'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles forget doctor completions help" -f -a "top" -d 'Watch a live cluster full-screen: nodes by role, readiness, connections, events'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles forget doctor completions help" -f -a "epmd" -d 'Run the port mapper (an EPMD-compatible daemon), or query/stop one'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles forget doctor completions help" -f -a "names" -d 'List the nodes registered with a host\'s port mapper'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles forget doctor completions help" -f -a "roles" -d 'Validate the roles file and list its roles (or print the built-in one)'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles forget doctor completions help" -f -a "forget" -d 'Remove offline nodes from the beacon\'s table'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles forget doctor completions help" -f -a "doctor" -d 'Check what usually goes wrong (port mapper, names, cookie, ports, ticktime, beacon)'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles forget doctor completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles forget doctor completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
