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
complete -c cluster -n "__fish_cluster_needs_command" -f -a "kv" -d 'Read and write the data tier (get, put, delete, list, buckets, status) on a data node'
complete -c cluster -n "__fish_cluster_needs_command" -f -a "procs" -d 'List the process registry (cluster_server), or create a process (`procs create`)'
complete -c cluster -n "__fish_cluster_needs_command" -f -a "whereis" -d 'Find where a registered process lives; exits 1 when it is not registered'
complete -c cluster -n "__fish_cluster_needs_command" -f -a "config" -d 'Read, write and watch the cluster-wide shared configuration (held by the beacon)'
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
complete -c cluster -n "__fish_cluster_using_subcommand start" -l data-dir -d 'Data roles: the node\'s data directory [default: the user\'s data dir, one folder per node name]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand start" -l kv-port -d 'Data roles: serve the kv_server line protocol on this port (0: any free port), on the node\'s host address' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l follow -d 'data_service: the data_contact to follow [default: the first the beacon offers]' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l log-retention -d 'data_contact: versions of change log kept, so replicas that were down can resume without a snapshot' -r
complete -c cluster -n "__fish_cluster_using_subcommand start" -l max-value-size -d 'Data roles: the largest value accepted, in bytes of its external term format' -r
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
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -l node -d 'The data node to ask [default: a data node the beacon knows]' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -l beacon -d 'The beacon, to find a data node [default: env CLUSTER_BEACON, then the roles file\'s]' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -l timeout -d 'Seconds to wait for the answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -l json -d 'Print JSON'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -f -a "get" -d 'Print a key\'s value (exit 1 when absent)'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -f -a "put" -d 'Store a value (an Erlang term); prints the version it was written at'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -f -a "delete" -d 'Remove a key'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -f -a "list" -d 'List a bucket\'s keys, values and versions, in key order'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -f -a "buckets" -d 'List the buckets'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -f -a "status" -d 'The node\'s data status: role, version, lag, whether its reads are stale'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and not __fish_seen_subcommand_from get put delete list buckets status help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from get" -l min-version -d 'Wait (up to 4 s) until the node has applied this version: read-your-writes on a replica' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from get" -l node -d 'The data node to ask [default: a data node the beacon knows]' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from get" -l beacon -d 'The beacon, to find a data node [default: env CLUSTER_BEACON, then the roles file\'s]' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from get" -l timeout -d 'Seconds to wait for the answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from get" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from get" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from get" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from get" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from get" -l json -d 'Print JSON'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from get" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from put" -l expect -d 'Compare-and-set: write only if the key is at this version (0: only if absent)' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from put" -l node -d 'The data node to ask [default: a data node the beacon knows]' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from put" -l beacon -d 'The beacon, to find a data node [default: env CLUSTER_BEACON, then the roles file\'s]' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from put" -l timeout -d 'Seconds to wait for the answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from put" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from put" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from put" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from put" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from put" -l json -d 'Print JSON'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from put" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from put" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from put" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from delete" -l node -d 'The data node to ask [default: a data node the beacon knows]' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from delete" -l beacon -d 'The beacon, to find a data node [default: env CLUSTER_BEACON, then the roles file\'s]' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from delete" -l timeout -d 'Seconds to wait for the answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from delete" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from delete" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from delete" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from delete" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from delete" -l json -d 'Print JSON'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from list" -l prefix -d 'Only keys starting with this' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from list" -l limit -d 'At most this many (the node caps it at 10000, and at about 16 MiB)' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from list" -l after -d 'Start after this key (to page through a large bucket)' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from list" -l node -d 'The data node to ask [default: a data node the beacon knows]' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from list" -l beacon -d 'The beacon, to find a data node [default: env CLUSTER_BEACON, then the roles file\'s]' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from list" -l timeout -d 'Seconds to wait for the answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from list" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from list" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from list" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from list" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from list" -l json -d 'Print JSON'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from buckets" -l node -d 'The data node to ask [default: a data node the beacon knows]' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from buckets" -l beacon -d 'The beacon, to find a data node [default: env CLUSTER_BEACON, then the roles file\'s]' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from buckets" -l timeout -d 'Seconds to wait for the answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from buckets" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from buckets" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from buckets" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from buckets" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from buckets" -l json -d 'Print JSON'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from buckets" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from buckets" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from buckets" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from status" -l node -d 'The data node to ask [default: a data node the beacon knows]' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from status" -l beacon -d 'The beacon, to find a data node [default: env CLUSTER_BEACON, then the roles file\'s]' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from status" -l timeout -d 'Seconds to wait for the answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from status" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from status" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from status" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from status" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from status" -l json -d 'Print JSON'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from status" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from help" -f -a "get" -d 'Print a key\'s value (exit 1 when absent)'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from help" -f -a "put" -d 'Store a value (an Erlang term); prints the version it was written at'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Remove a key'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from help" -f -a "list" -d 'List a bucket\'s keys, values and versions, in key order'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from help" -f -a "buckets" -d 'List the buckets'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from help" -f -a "status" -d 'The node\'s data status: role, version, lag, whether its reads are stale'
complete -c cluster -n "__fish_cluster_using_subcommand kv; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cluster -n "__fish_cluster_using_subcommand procs; and not __fish_seen_subcommand_from create help" -l type -d 'Only this type' -r
complete -c cluster -n "__fish_cluster_using_subcommand procs; and not __fish_seen_subcommand_from create help" -l node -d 'Only processes living on this node' -r
complete -c cluster -n "__fish_cluster_using_subcommand procs; and not __fish_seen_subcommand_from create help" -l via -d 'The node whose cluster_server to ask [default: the beacon]' -r
complete -c cluster -n "__fish_cluster_using_subcommand procs; and not __fish_seen_subcommand_from create help" -l beacon -d 'The beacon [default: env CLUSTER_BEACON, then the roles file\'s]' -r
complete -c cluster -n "__fish_cluster_using_subcommand procs; and not __fish_seen_subcommand_from create help" -l timeout -d 'Seconds to wait for the answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand procs; and not __fish_seen_subcommand_from create help" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand procs; and not __fish_seen_subcommand_from create help" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand procs; and not __fish_seen_subcommand_from create help" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand procs; and not __fish_seen_subcommand_from create help" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand procs; and not __fish_seen_subcommand_from create help" -l json -d 'Print JSON'
complete -c cluster -n "__fish_cluster_using_subcommand procs; and not __fish_seen_subcommand_from create help" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand procs; and not __fish_seen_subcommand_from create help" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand procs; and not __fish_seen_subcommand_from create help" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand procs; and not __fish_seen_subcommand_from create help" -f -a "create" -d 'Create a process of TYPE for ID on a node picked by the selector (or get the one that exists)'
complete -c cluster -n "__fish_cluster_using_subcommand procs; and not __fish_seen_subcommand_from create help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cluster -n "__fish_cluster_using_subcommand procs; and __fish_seen_subcommand_from create" -l selector -d 'least_loaded, hash, random, or a node name' -r
complete -c cluster -n "__fish_cluster_using_subcommand procs; and __fish_seen_subcommand_from create" -l via -d 'The node whose cluster_server to ask [default: the beacon]' -r
complete -c cluster -n "__fish_cluster_using_subcommand procs; and __fish_seen_subcommand_from create" -l beacon -d 'The beacon [default: env CLUSTER_BEACON, then the roles file\'s]' -r
complete -c cluster -n "__fish_cluster_using_subcommand procs; and __fish_seen_subcommand_from create" -l timeout -d 'Seconds to wait for the answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand procs; and __fish_seen_subcommand_from create" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand procs; and __fish_seen_subcommand_from create" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand procs; and __fish_seen_subcommand_from create" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand procs; and __fish_seen_subcommand_from create" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand procs; and __fish_seen_subcommand_from create" -l json -d 'Print JSON'
complete -c cluster -n "__fish_cluster_using_subcommand procs; and __fish_seen_subcommand_from create" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand procs; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand procs; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand procs; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a process of TYPE for ID on a node picked by the selector (or get the one that exists)'
complete -c cluster -n "__fish_cluster_using_subcommand procs; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cluster -n "__fish_cluster_using_subcommand whereis" -l via -d 'The node whose cluster_server to ask [default: the beacon]' -r
complete -c cluster -n "__fish_cluster_using_subcommand whereis" -l beacon -d 'The beacon [default: env CLUSTER_BEACON, then the roles file\'s]' -r
complete -c cluster -n "__fish_cluster_using_subcommand whereis" -l timeout -d 'Seconds to wait for the answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand whereis" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand whereis" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand whereis" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand whereis" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand whereis" -l json -d 'Print JSON'
complete -c cluster -n "__fish_cluster_using_subcommand whereis" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand whereis" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand whereis" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand config; and not __fish_seen_subcommand_from get set delete list watch help" -l beacon -d 'The node holding the config [default: the beacon]' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and not __fish_seen_subcommand_from get set delete list watch help" -l timeout -d 'Seconds to wait for an answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and not __fish_seen_subcommand_from get set delete list watch help" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and not __fish_seen_subcommand_from get set delete list watch help" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and not __fish_seen_subcommand_from get set delete list watch help" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand config; and not __fish_seen_subcommand_from get set delete list watch help" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand config; and not __fish_seen_subcommand_from get set delete list watch help" -l json -d 'Print JSON'
complete -c cluster -n "__fish_cluster_using_subcommand config; and not __fish_seen_subcommand_from get set delete list watch help" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand config; and not __fish_seen_subcommand_from get set delete list watch help" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand config; and not __fish_seen_subcommand_from get set delete list watch help" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand config; and not __fish_seen_subcommand_from get set delete list watch help" -f -a "get" -d 'Print a key\'s value (exit 1 when it is not set)'
complete -c cluster -n "__fish_cluster_using_subcommand config; and not __fish_seen_subcommand_from get set delete list watch help" -f -a "set" -d 'Set a key; prints the config\'s new version'
complete -c cluster -n "__fish_cluster_using_subcommand config; and not __fish_seen_subcommand_from get set delete list watch help" -f -a "delete" -d 'Delete a key'
complete -c cluster -n "__fish_cluster_using_subcommand config; and not __fish_seen_subcommand_from get set delete list watch help" -f -a "list" -d 'List keys, values and versions'
complete -c cluster -n "__fish_cluster_using_subcommand config; and not __fish_seen_subcommand_from get set delete list watch help" -f -a "watch" -d 'Print the keys under PREFIX, then every change as it happens, until interrupted'
complete -c cluster -n "__fish_cluster_using_subcommand config; and not __fish_seen_subcommand_from get set delete list watch help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from get" -l beacon -d 'The node holding the config [default: the beacon]' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from get" -l timeout -d 'Seconds to wait for an answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from get" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from get" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from get" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from get" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from get" -l json -d 'Print JSON'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from get" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from set" -l beacon -d 'The node holding the config [default: the beacon]' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from set" -l timeout -d 'Seconds to wait for an answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from set" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from set" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from set" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from set" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from set" -l text -d 'Store VALUE as a UTF-8 binary, as it is'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from set" -l json -d 'Print JSON'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from set" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from set" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from delete" -l beacon -d 'The node holding the config [default: the beacon]' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from delete" -l timeout -d 'Seconds to wait for an answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from delete" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from delete" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from delete" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from delete" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from delete" -l json -d 'Print JSON'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from list" -l beacon -d 'The node holding the config [default: the beacon]' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from list" -l timeout -d 'Seconds to wait for an answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from list" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from list" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from list" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from list" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from list" -l json -d 'Print JSON'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from watch" -l count -d 'Stop after this many changes' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from watch" -l beacon -d 'The node holding the config [default: the beacon]' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from watch" -l timeout -d 'Seconds to wait for an answer' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from watch" -l epmd-port -d 'Port of the port mapper (EPMD) on every host' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from watch" -l cookie -d 'Distribution cookie (overrides --cookie-file and ~/.erlang.cookie)' -r
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from watch" -l cookie-file -d 'File holding the distribution cookie (accessible by its owner only, as erl requires)' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from watch" -l roles -d 'Roles file [default: ./roles.toml, then the user config directory]' -r -F
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from watch" -l json -d 'Print JSON'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from watch" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from watch" -s h -l help -d 'Print help'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from watch" -s V -l version -d 'Print version'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "get" -d 'Print a key\'s value (exit 1 when it is not set)'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "set" -d 'Set a key; prints the config\'s new version'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a key'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "list" -d 'List keys, values and versions'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "watch" -d 'Print the keys under PREFIX, then every change as it happens, until interrupted'
complete -c cluster -n "__fish_cluster_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
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
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "start" -d 'Run a node in the foreground'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "ping" -d 'Ping nodes, like net_adm:ping/1; exits 0 only if every node answers pong'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "monitor" -d 'Follow a node\'s nodeup/nodedown events'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "requirements" -d 'Ask the beacon which providers a node\'s requirements have; exits 0 when all are online'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "up" -d 'Start a local cluster (the beacon and one node per role) and follow it'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "top" -d 'Watch a live cluster full-screen: nodes by role, readiness, connections, events'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "epmd" -d 'Run the port mapper (an EPMD-compatible daemon), or query/stop one'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "names" -d 'List the nodes registered with a host\'s port mapper'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "roles" -d 'Validate the roles file and list its roles (or print the built-in one)'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "kv" -d 'Read and write the data tier (get, put, delete, list, buckets, status) on a data node'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "procs" -d 'List the process registry (cluster_server), or create a process (`procs create`)'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "whereis" -d 'Find where a registered process lives; exits 1 when it is not registered'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "config" -d 'Read, write and watch the cluster-wide shared configuration (held by the beacon)'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "forget" -d 'Remove offline nodes from the beacon\'s table'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "doctor" -d 'Check what usually goes wrong (port mapper, names, cookie, ports, ticktime, beacon)'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c cluster -n "__fish_cluster_using_subcommand help; and not __fish_seen_subcommand_from start ping monitor requirements up top epmd names roles kv procs whereis config forget doctor completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cluster -n "__fish_cluster_using_subcommand help; and __fish_seen_subcommand_from kv" -f -a "get" -d 'Print a key\'s value (exit 1 when absent)'
complete -c cluster -n "__fish_cluster_using_subcommand help; and __fish_seen_subcommand_from kv" -f -a "put" -d 'Store a value (an Erlang term); prints the version it was written at'
complete -c cluster -n "__fish_cluster_using_subcommand help; and __fish_seen_subcommand_from kv" -f -a "delete" -d 'Remove a key'
complete -c cluster -n "__fish_cluster_using_subcommand help; and __fish_seen_subcommand_from kv" -f -a "list" -d 'List a bucket\'s keys, values and versions, in key order'
complete -c cluster -n "__fish_cluster_using_subcommand help; and __fish_seen_subcommand_from kv" -f -a "buckets" -d 'List the buckets'
complete -c cluster -n "__fish_cluster_using_subcommand help; and __fish_seen_subcommand_from kv" -f -a "status" -d 'The node\'s data status: role, version, lag, whether its reads are stale'
complete -c cluster -n "__fish_cluster_using_subcommand help; and __fish_seen_subcommand_from procs" -f -a "create" -d 'Create a process of TYPE for ID on a node picked by the selector (or get the one that exists)'
complete -c cluster -n "__fish_cluster_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "get" -d 'Print a key\'s value (exit 1 when it is not set)'
complete -c cluster -n "__fish_cluster_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "set" -d 'Set a key; prints the config\'s new version'
complete -c cluster -n "__fish_cluster_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "delete" -d 'Delete a key'
complete -c cluster -n "__fish_cluster_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "list" -d 'List keys, values and versions'
complete -c cluster -n "__fish_cluster_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "watch" -d 'Print the keys under PREFIX, then every change as it happens, until interrupted'
