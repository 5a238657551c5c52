# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_primaryctl_global_optspecs
    string join \n socket= h/help V/version
end

function __fish_primaryctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_primaryctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_primaryctl_using_subcommand
    set -l cmd (__fish_primaryctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c primaryctl -n "__fish_primaryctl_needs_command" -l socket -d 'primaryd\'s control socket ([control] socket in its config)' -r -F
complete -c primaryctl -n "__fish_primaryctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c primaryctl -n "__fish_primaryctl_needs_command" -s V -l version -d 'Print version'
complete -c primaryctl -n "__fish_primaryctl_needs_command" -f -a "show" -d 'Show routes, peers or services'
complete -c primaryctl -n "__fish_primaryctl_needs_command" -f -a "drain" -d 'Withdraw a service\'s routes and hold them down (persists across restarts)'
complete -c primaryctl -n "__fish_primaryctl_needs_command" -f -a "undrain" -d 'Let a drained service announce again once healthy'
complete -c primaryctl -n "__fish_primaryctl_needs_command" -f -a "reload" -d 'Re-read the configuration file (like SIGHUP)'
complete -c primaryctl -n "__fish_primaryctl_needs_command" -f -a "confirm" -d 'Vouch for this host\'s server as SERVICE\'s primary: clears a restart hold or a latched conflict, and writes a new promotion term when a newer one was seen (docs/safety.md)'
complete -c primaryctl -n "__fish_primaryctl_needs_command" -f -a "check" -d 'Check now and say the result; a service that passes and may be announced is announced before the answer. Exit status 0: announced; 2: not announced; 1: error'
complete -c primaryctl -n "__fish_primaryctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and not __fish_seen_subcommand_from routes peers services help" -l socket -d 'primaryd\'s control socket ([control] socket in its config)' -r -F
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and not __fish_seen_subcommand_from routes peers services help" -s h -l help -d 'Print help'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and not __fish_seen_subcommand_from routes peers services help" -f -a "routes" -d 'Per service prefix: health, announced or withdrawn, why, and per peer what was sent'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and not __fish_seen_subcommand_from routes peers services help" -f -a "peers" -d 'BGP sessions: state, uptime, capabilities, counters, last error'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and not __fish_seen_subcommand_from routes peers services help" -f -a "services" -d 'Health checks: state, last result and latency, counters, reason'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and not __fish_seen_subcommand_from routes peers services help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and __fish_seen_subcommand_from routes" -l peer -d 'With `received`: only this peer' -r
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and __fish_seen_subcommand_from routes" -l socket -d 'primaryd\'s control socket ([control] socket in its config)' -r -F
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and __fish_seen_subcommand_from routes" -l json
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and __fish_seen_subcommand_from routes" -s h -l help -d 'Print help'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and __fish_seen_subcommand_from peers" -l socket -d 'primaryd\'s control socket ([control] socket in its config)' -r -F
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and __fish_seen_subcommand_from peers" -l json
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and __fish_seen_subcommand_from peers" -s h -l help -d 'Print help'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and __fish_seen_subcommand_from services" -l socket -d 'primaryd\'s control socket ([control] socket in its config)' -r -F
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and __fish_seen_subcommand_from services" -l json
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and __fish_seen_subcommand_from services" -s h -l help -d 'Print help'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and __fish_seen_subcommand_from help" -f -a "routes" -d 'Per service prefix: health, announced or withdrawn, why, and per peer what was sent'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and __fish_seen_subcommand_from help" -f -a "peers" -d 'BGP sessions: state, uptime, capabilities, counters, last error'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and __fish_seen_subcommand_from help" -f -a "services" -d 'Health checks: state, last result and latency, counters, reason'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand show; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand drain" -l socket -d 'primaryd\'s control socket ([control] socket in its config)' -r -F
complete -c primaryctl -n "__fish_primaryctl_using_subcommand drain" -l all -d 'Every service'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand drain" -s h -l help -d 'Print help'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand undrain" -l socket -d 'primaryd\'s control socket ([control] socket in its config)' -r -F
complete -c primaryctl -n "__fish_primaryctl_using_subcommand undrain" -l all -d 'Every service'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand undrain" -s h -l help -d 'Print help'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand reload" -l socket -d 'primaryd\'s control socket ([control] socket in its config)' -r -F
complete -c primaryctl -n "__fish_primaryctl_using_subcommand reload" -s h -l help -d 'Print help'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand confirm" -l socket -d 'primaryd\'s control socket ([control] socket in its config)' -r -F
complete -c primaryctl -n "__fish_primaryctl_using_subcommand confirm" -s h -l help -d 'Print help'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand check" -l socket -d 'primaryd\'s control socket ([control] socket in its config)' -r -F
complete -c primaryctl -n "__fish_primaryctl_using_subcommand check" -l all -d 'Every service'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand check" -l json -d 'Print the daemon\'s answer as JSON'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand check" -s h -l help -d 'Print help'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand help; and not __fish_seen_subcommand_from show drain undrain reload confirm check help" -f -a "show" -d 'Show routes, peers or services'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand help; and not __fish_seen_subcommand_from show drain undrain reload confirm check help" -f -a "drain" -d 'Withdraw a service\'s routes and hold them down (persists across restarts)'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand help; and not __fish_seen_subcommand_from show drain undrain reload confirm check help" -f -a "undrain" -d 'Let a drained service announce again once healthy'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand help; and not __fish_seen_subcommand_from show drain undrain reload confirm check help" -f -a "reload" -d 'Re-read the configuration file (like SIGHUP)'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand help; and not __fish_seen_subcommand_from show drain undrain reload confirm check help" -f -a "confirm" -d 'Vouch for this host\'s server as SERVICE\'s primary: clears a restart hold or a latched conflict, and writes a new promotion term when a newer one was seen (docs/safety.md)'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand help; and not __fish_seen_subcommand_from show drain undrain reload confirm check help" -f -a "check" -d 'Check now and say the result; a service that passes and may be announced is announced before the answer. Exit status 0: announced; 2: not announced; 1: error'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand help; and not __fish_seen_subcommand_from show drain undrain reload confirm check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand help; and __fish_seen_subcommand_from show" -f -a "routes" -d 'Per service prefix: health, announced or withdrawn, why, and per peer what was sent'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand help; and __fish_seen_subcommand_from show" -f -a "peers" -d 'BGP sessions: state, uptime, capabilities, counters, last error'
complete -c primaryctl -n "__fish_primaryctl_using_subcommand help; and __fish_seen_subcommand_from show" -f -a "services" -d 'Health checks: state, last result and latency, counters, reason'
