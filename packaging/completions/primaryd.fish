complete -c primaryd -l config -d 'Configuration file (TOML)' -r -F
complete -c primaryd -l log-format -d 'Log lines as text (for people) or one JSON object each (for log shippers)' -r -f -a "text\t''
json\t''"
complete -c primaryd -l check -d 'Validate the configuration (and what start-up needs from the host: secret files, socket group, interfaces, listen addresses), then exit'
complete -c primaryd -s h -l help -d 'Print help (see more with \'--help\')'
complete -c primaryd -s V -l version -d 'Print version'
