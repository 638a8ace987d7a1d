# Design: one C function answers a faulting CPUID from a SIGSEGV handler
# (the real instruction, with faulting off for the moment, then the AVX-512
# bits cleared); Python only turns it on, once, and reads CPUID for the
# tests. Nothing here runs in the kernels.
"""Hide AVX-512 from every library in this process, to time them as on an
AVX2 CPU (``python -m pyx_gru.bench --hide-avx512``).

pyx_gru's kernels, SciPy's OpenBLAS, PyTorch, oneDNN and XLA each have a
switch that narrows their vector path (``PYX_GRU_SIMD``,
``OPENBLAS_CORETYPE``, ...); ONNX Runtime's MLAS has none: it reads the
CPU's features with the CPUID instruction and takes its AVX-512 kernels
where they exist. Linux can make CPUID fault in a thread
(``arch_prctl(ARCH_SET_CPUID, 0)``, "CPUID faulting", on CPUs and
hypervisors that offer it; the ``cpuid_fault`` flag of /proc/cpuinfo).
:func:`hide_avx512` turns it on and installs a SIGSEGV handler that runs
the real instruction, clears the AVX-512 feature bits (and AMX's) of leaf
7, and resumes after it: every library that asks afterwards sees a CPU with
AVX2 and FMA and without AVX-512. The setting is per thread and passes to
threads started later, so call it before any library starts its threads or
reads the CPU (before importing the peers); ``exec`` ends it. A fault that
is not a CPUID goes to the handler that was there before. Linux on x86-64
only.
"""

cdef extern from *:
    """
    #if defined(__linux__) && defined(__x86_64__) && defined(__GNUC__)
    #include <asm/prctl.h>
    #include <errno.h>
    #include <cpuid.h>
    #include <signal.h>
    #include <string.h>
    #include <sys/syscall.h>
    #include <ucontext.h>
    #include <unistd.h>
    #define PYX_CPUID_X86 1

    static struct sigaction pyx_cpuid_previous;
    static long pyx_cpuid_traps = 0;
    static int pyx_cpuid_hidden = 0;

    /* Leaf 7's AVX-512 and AMX feature bits: subleaf 0 EBX (F, DQ, IFMA, PF,
     * ER, CD, BW, VL), ECX (VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ), EDX
     * (4VNNIW, 4FMAPS, VP2INTERSECT, AMX-BF16, FP16, AMX-TILE, AMX-INT8);
     * subleaf 1 EAX (AVX512_BF16), EDX (AVX10). */
    #define PYX_L7_EBX ((1u<<16)|(1u<<17)|(1u<<21)|(1u<<26)|(1u<<27)|(1u<<28)|(1u<<30)|(1u<<31))
    #define PYX_L7_ECX ((1u<<1)|(1u<<6)|(1u<<11)|(1u<<12)|(1u<<14))
    #define PYX_L7_EDX ((1u<<2)|(1u<<3)|(1u<<8)|(1u<<22)|(1u<<23)|(1u<<24)|(1u<<25))
    #define PYX_L71_EAX (1u<<5)
    #define PYX_L71_EDX (1u<<19)

    static void pyx_cpuid_masked(unsigned leaf, unsigned sub, unsigned r[4]) {
        __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
        if (leaf == 7 && sub == 0) {
            r[1] &= ~PYX_L7_EBX;
            r[2] &= ~PYX_L7_ECX;
            r[3] &= ~PYX_L7_EDX;
        } else if (leaf == 7 && sub == 1) {
            r[0] &= ~PYX_L71_EAX;
            r[3] &= ~PYX_L71_EDX;
        }
    }

    static void pyx_cpuid_on_segv(int sig, siginfo_t *info, void *context) {
        ucontext_t *uc = (ucontext_t *) context;
        greg_t *g = uc->uc_mcontext.gregs;
        const unsigned char *ip = (const unsigned char *) g[REG_RIP];
        unsigned r[4];
        int saved_errno = errno;
        if (ip[0] != 0x0f || ip[1] != 0xa2) {
            /* not CPUID: the fault is the previous handler's, called as it
               would have been; with none (the default action), restore it
               and return, so that the instruction faults again and ends
               the process */
            if (pyx_cpuid_previous.sa_flags & SA_SIGINFO)
                pyx_cpuid_previous.sa_sigaction(sig, info, context);
            else if (pyx_cpuid_previous.sa_handler != SIG_DFL
                     && pyx_cpuid_previous.sa_handler != SIG_IGN)
                pyx_cpuid_previous.sa_handler(sig);
            else
                sigaction(SIGSEGV, &pyx_cpuid_previous, NULL);
            errno = saved_errno;
            return;
        }
        __atomic_fetch_add(&pyx_cpuid_traps, 1, __ATOMIC_RELAXED);
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
        pyx_cpuid_masked((unsigned) g[REG_RAX], (unsigned) g[REG_RCX], r);
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
        errno = saved_errno;
        g[REG_RAX] = r[0];
        g[REG_RBX] = r[1];
        g[REG_RCX] = r[2];
        g[REG_RDX] = r[3];
        g[REG_RIP] += 2;
    }

    /* 0, or the errno of the step that failed */
    static int pyx_cpuid_hide(void) {
        struct sigaction sa;
        if (pyx_cpuid_hidden)
            return 0;
        if (syscall(SYS_arch_prctl, ARCH_GET_CPUID, 0) < 0)
            return errno;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = pyx_cpuid_on_segv;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSEGV, &sa, &pyx_cpuid_previous))
            return errno;
        if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) < 0) {
            int e = errno;
            sigaction(SIGSEGV, &pyx_cpuid_previous, NULL);
            return e;
        }
        pyx_cpuid_hidden = 1;
        return 0;
    }

    /* CPUID as this thread sees it (through the handler when hidden) */
    static void pyx_cpuid_read(unsigned leaf, unsigned sub, unsigned r[4]) {
        __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    }
    #else
    #define PYX_CPUID_X86 0
    static long pyx_cpuid_traps = 0;
    static int pyx_cpuid_hidden = 0;
    static int pyx_cpuid_hide(void) { return -1; }
    static void pyx_cpuid_read(unsigned leaf, unsigned sub, unsigned r[4]) {
        (void) leaf; (void) sub; r[0] = r[1] = r[2] = r[3] = 0;
    }
    #endif
    """
    int PYX_CPUID_X86
    long pyx_cpuid_traps
    int pyx_cpuid_hidden
    int pyx_cpuid_hide() nogil
    void pyx_cpuid_read(unsigned leaf, unsigned sub, unsigned* r) nogil

import os

SUPPORTED = bool(PYX_CPUID_X86)


def hide_avx512():
    """Make CPUID report no AVX-512 (nor AMX) to every library in this
    process from now on, in this thread and in threads started later.

    Raises
    ------
    OSError
        Not Linux on x86-64, or the kernel, CPU or hypervisor offers no
        CPUID faulting (the message says which step failed and why).
    """
    cdef int e
    if not SUPPORTED:
        raise OSError("hiding AVX-512 needs Linux on x86-64 (CPUID faulting)")
    e = pyx_cpuid_hide()
    if e:
        raise OSError(e, f"cannot make CPUID fault in this process ({os.strerror(e)}): "
                         "this CPU, kernel or hypervisor offers no CPUID faulting "
                         "(see the cpuid_fault flag in /proc/cpuinfo)")


def hidden():
    """Whether :func:`hide_avx512` has taken effect in this process."""
    return bool(pyx_cpuid_hidden)


def traps():
    """How many CPUID instructions the handler has answered so far."""
    return pyx_cpuid_traps


def cpuid(unsigned leaf, unsigned subleaf=0):
    """CPUID(leaf, subleaf) as this thread sees it: (eax, ebx, ecx, edx).

    Raises
    ------
    OSError
        Not x86-64 Linux.
    """
    cdef unsigned r[4]
    if not SUPPORTED:
        raise OSError("CPUID is an x86-64 instruction")
    pyx_cpuid_read(leaf, subleaf, r)
    return (r[0], r[1], r[2], r[3])
