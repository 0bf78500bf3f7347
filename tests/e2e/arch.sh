# Which architectures a check needs: the rule of RUN_ARCH (tests/unit/t.h)
# for the shell suites. Sourced (POSIX sh, busybox ash in the lab), not run.
#
#   arch_init SANDLET     probes where guests run with `SANDLET backend ARCH`
#                         (kvm, pvm or lab) and reads SANDLET_TEST_ARCHS;
#                         prints a FAIL line and returns 1 when that list names
#                         an unknown architecture or one whose guests cannot
#                         run here (the caller counts it as a failure).
#   arch_need [kvm] ARCH...
#                         true when a check that runs guests of every ARCH
#                         (amd64, i686: both for a check that mixes them) is
#                         selected: each ARCH is available here (its backend is
#                         not lab; with kvm, the check needs hardware-KVM
#                         semantics: its backend is kvm) and at least one ARCH
#                         is covered by SANDLET_TEST_ARCHS ("amd64", "i686",
#                         "amd64,i686"; unset or empty: all).
#   arch_backend ARCH     kvm, pvm or lab, as probed.
#
# A check that runs no guest at all (usage errors, --help) is not wrapped: it
# always runs. A check that is not selected prints nothing: the run that
# covers it (tests/run: natively or in the KVM lab) counts it.

arch_init() {
    # sl_backend_probe's answer, as RUN_ARCH has it: SANDLET_FORCE_LAB is
    # tests/run's business (it sends the whole suite to the lab).
    _arch_amd64=$(SANDLET_FORCE_LAB='' "$1" backend amd64 2>/dev/null) || _arch_amd64=lab
    _arch_i686=$(SANDLET_FORCE_LAB='' "$1" backend i686 2>/dev/null) || _arch_i686=lab
    [ -n "$_arch_amd64" ] || _arch_amd64=lab
    [ -n "$_arch_i686" ] || _arch_i686=lab
    _arch_cov_amd64=1 _arch_cov_i686=1
    [ -n "${SANDLET_TEST_ARCHS:-}" ] || return 0
    _arch_cov_amd64=0 _arch_cov_i686=0
    _arch_rc=0
    for _arch_w in $(echo "$SANDLET_TEST_ARCHS" | tr ',' ' '); do
        case $_arch_w in
        amd64 | x86_64 | x86-64) _arch_cov_amd64=1 ;;
        i686 | i386) _arch_cov_i686=1 ;;
        *)
            echo "FAIL SANDLET_TEST_ARCHS=$SANDLET_TEST_ARCHS: unknown architecture '$_arch_w' (amd64, i686)"
            _arch_rc=1
            ;;
        esac
    done
    if [ "$_arch_cov_amd64" = 1 ] && [ "$_arch_amd64" = lab ]; then
        echo "FAIL SANDLET_TEST_ARCHS=$SANDLET_TEST_ARCHS: amd64 guests cannot run here ($1 backend amd64: lab)"
        _arch_rc=1
    fi
    if [ "$_arch_cov_i686" = 1 ] && [ "$_arch_i686" = lab ]; then
        echo "FAIL SANDLET_TEST_ARCHS=$SANDLET_TEST_ARCHS: i686 guests cannot run here ($1 backend i686: lab)"
        _arch_rc=1
    fi
    return $_arch_rc
}

arch_backend() {
    case $1 in
    amd64) echo "$_arch_amd64" ;;
    i686) echo "$_arch_i686" ;;
    *) echo lab ;;
    esac
}

arch_need() {
    _arch_kvm=0
    if [ "$1" = kvm ]; then
        _arch_kvm=1
        shift
    fi
    _arch_hit=0
    for _arch_a in "$@"; do
        case $_arch_a in
        amd64) _arch_b=$_arch_amd64 _arch_c=$_arch_cov_amd64 ;;
        i686) _arch_b=$_arch_i686 _arch_c=$_arch_cov_i686 ;;
        *) return 1 ;;
        esac
        [ "$_arch_b" != lab ] || return 1
        [ "$_arch_kvm" = 0 ] || [ "$_arch_b" = kvm ] || return 1
        [ "$_arch_c" = 0 ] || _arch_hit=1
    done
    [ "$_arch_hit" = 1 ]
}
