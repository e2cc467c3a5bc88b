# bash completion for faultline(1): commands, their options, live session names, the fault
# names of a session, policy files for -p and KEY= names for `set`. Installed as
# /usr/share/bash-completion/completions/faultline; standalone (no bash-completion helpers
# needed), so `source completion/faultline.bash` works in a plain bash too.
#
# Sessions and faults are read from the `faultline` being completed (the first word, so a
# build tree's ./build/faultline completes from itself), with FAULTLINE_DISABLE=1 so that a
# shell preloading the shim never injects into it. `--json` output is used when the command
# has it, the plain tables otherwise.

_faultline_commands="run explore doctor validate sessions status enable disable remove set add panic powercut
resume events watch help"

# The live session names, one per line.
_faultline_sessions() {
  local fl=$1 out
  if out=$(FAULTLINE_DISABLE=1 "$fl" sessions --json 2>/dev/null) && [[ $out == [\[{]* ]]; then
    # Every "name" of sessions --json is a session's.
    printf '%s\n' "$out" | grep -o '"name": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/'
  else
    # NAME OWNER PIDS ...: the first column of every line but the header; unusable blocks
    # (another user's, another build's) are listed too, but cannot be steered.
    FAULTLINE_DISABLE=1 "$fl" sessions 2>/dev/null |
      awk 'NR > 1 && $1 != "no" && $0 !~ / unusable / { print $1 }'
  fi
}

# The fault names of session $2 (empty: the one live session), one per line.
_faultline_faults() {
  local fl=$1 session=$2 out
  local args=(status)
  [[ -n $session ]] && args+=("$session")
  if out=$(FAULTLINE_DISABLE=1 "$fl" "${args[@]}" --json 2>/dev/null) && [[ $out == \{* ]]; then
    # The names inside "faults":[...] (the session's own name is "session", not "name").
    printf '%s\n' "${out#*\"faults\":}" | grep -o '"name": *"[^"]*"' |
      sed 's/.*"\([^"]*\)"$/\1/'
  else
    FAULTLINE_DISABLE=1 "$fl" "${args[@]}" 2>/dev/null |
      awk '$1 == "FAULT" { table = 1; next } table && NF { print $1 }'
  fi
}

# Files for a policy: *.toml and directories to descend into.
_faultline_policy_files() {
  local cur=$1
  compopt -o filenames 2>/dev/null
  COMPREPLY+=($(compgen -f -X '!*.toml' -- "$cur") $(compgen -d -- "$cur"))
}

_faultline() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  local fl=${COMP_WORDS[0]}
  COMPREPLY=()

  # The command: the first word after faultline that is not an option.
  local i command="" command_at=0
  for ((i = 1; i < COMP_CWORD; i++)); do
    if [[ ${COMP_WORDS[i]} != -* ]]; then
      command=${COMP_WORDS[i]}
      command_at=$i
      break
    fi
  done
  if [[ -z $command ]]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "--help --version" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$_faultline_commands" -- "$cur"))
    fi
    return 0
  fi

  # After `--` in run, explore and doctor: a command line of its own.
  for ((i = command_at + 1; i < COMP_CWORD; i++)); do
    if [[ ${COMP_WORDS[i]} == -- ]]; then
      if ((i + 1 == COMP_CWORD)); then
        COMPREPLY=($(compgen -c -- "$cur"))
      else
        compopt -o default 2>/dev/null
        COMPREPLY=()
      fi
      return 0
    fi
  done

  # Option values.
  case $prev in
    -p | --policy)
      _faultline_policy_files "$cur"
      return 0
      ;;
    -s | --session)
      COMPREPLY=($(compgen -W "$(_faultline_sessions "$fl")" -- "$cur"))
      return 0
      ;;
    --backend)
      COMPREPLY=($(compgen -W "auto preload seccomp" -- "$cur"))
      return 0
      ;;
    --log | --json-summary | --check | --recover)
      compopt -o filenames 2>/dev/null
      COMPREPLY=($(compgen -f -- "$cur"))
      return 0
      ;;
    --state)
      compopt -o filenames 2>/dev/null
      COMPREPLY=($(compgen -d -- "$cur"))
      return 0
      ;;
    --seed | --max-runs | --timeout | -j | --jobs | --depth | --occurrences | --calls)
      return 0
      ;;
  esac

  local options="--help"
  case $command in
    run) options+=" -p --policy -s --session --seed --log --backend --json --json-summary -q --quiet --" ;;
    explore)
      options+=" -p --policy --calls --max-runs --timeout --check -j --jobs --state --depth"
      options+=" --occurrences --powercut --recover --in-place --json -q --quiet --report --"
      ;;
    doctor) options+=" --json --" ;;
    validate | sessions | status) options+=" --json" ;;
    events) options+=" -f --follow --json" ;;
    add) options+=" -p --policy" ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$options" -- "$cur"))
    return 0
  fi

  # Positional words after the command (options and their values left out).
  local words=()
  for ((i = command_at + 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      -p | --policy | -s | --session | --seed | --log | --json-summary | --backend) ((i++)) ;;
      -*) ;;
      *) words+=("${COMP_WORDS[i]}") ;;
    esac
  done

  case $command in
    help)
      ((${#words[@]} == 0)) && COMPREPLY=($(compgen -W "$_faultline_commands" -- "$cur"))
      ;;
    validate)
      ((${#words[@]} == 0)) && _faultline_policy_files "$cur"
      ;;
    status | events | watch | panic | resume | powercut | add)
      ((${#words[@]} == 0)) &&
        COMPREPLY=($(compgen -W "$(_faultline_sessions "$fl")" -- "$cur"))
      ;;
    enable | disable | remove | set)
      # [SESSION] FAULT...: the first word is a session only if one of that name is live.
      local sessions session="" faults
      sessions=$(_faultline_sessions "$fl")
      if ((${#words[@]} > 0)) && grep -qxF -- "${words[0]}" <<<"$sessions"; then
        session=${words[0]}
      fi
      if [[ $command == set ]]; then
        local named=${#words[@]}
        [[ -n $session ]] && ((named--))
        if ((named >= 1)); then
          # KEY=VALUE: the keys of a policy's [[fault]] that `set` changes.
          compopt -o nospace 2>/dev/null
          COMPREPLY=($(compgen -W "probability= error= delay= jitter= after= every= times=
            short= corrupt= quota= lie= crash= when= latency= bandwidth= loss= eof=
            after_bytes= p99= path= size= process= thread= stack= start_after= duration= enabled=" \
            -- "$cur"))
          return 0
        fi
      fi
      faults=$(_faultline_faults "$fl" "$session")
      if ((${#words[@]} == 0)); then
        COMPREPLY=($(compgen -W "$sessions $faults" -- "$cur"))
      else
        COMPREPLY=($(compgen -W "$faults" -- "$cur"))
      fi
      ;;
  esac
  return 0
}

complete -F _faultline faultline
