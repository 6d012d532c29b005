/* x86-64 System V context switch.
 *
 * void* goro_ctx_switch(void** save /rdi/, void* load /rsi/, void* transfer /rdx/);
 *
 * Saves what the ABI makes callee-saved: rbx, rbp, r12-r15, the stack pointer,
 * MXCSR's control bits and the x87 control word. Everything else is
 * caller-saved, so the C++ caller already assumes it is clobbered. Not saved:
 * the other vector/x87 registers (caller-saved), the direction flag (clear at
 * every call by the ABI), fs/gs bases (per thread, not per context).
 *
 * Frame left at the saved stack pointer (low to high):
 *   [0] MXCSR (4 bytes), x87 control word (2 bytes), padding
 *   [8] r15  [16] r14  [24] r13  [32] r12  [40] rbx  [48] rbp  [56] return address
 * src/arch/context_x86_64.cc builds the same frame for a fresh context, with
 * the return address pointing at goro_ctx_trampoline and r12/r13 holding the
 * entry function and its argument.
 */
    .text
    .globl goro_ctx_switch
    .type goro_ctx_switch, @function
    .p2align 4
goro_ctx_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    movq %rdx, %rax
    ret
    .cfi_endproc
    .size goro_ctx_switch, .-goro_ctx_switch

/* First code a fresh context runs: entry(transfer, arg) with entry in r12 and
 * arg in r13. The stack is 16-byte aligned here, as a call requires. entry
 * never returns; ud2 traps if it does. The return address is marked undefined
 * so debuggers and unwinders stop here: this is the bottom of a goroutine.
 * rax is cleared: the transfer (an Action on the switching goroutine's stack)
 * must not outlive this call in a register, and clang's prologue of the
 * entry function aligns the stack with a `push %rax`, which would keep it in
 * the goroutine's bottom frame for its whole life (the leak proof then sees
 * a reference into the other goroutine's stack, and misses a leak). */
    .globl goro_ctx_trampoline
    .type goro_ctx_trampoline, @function
    .p2align 4
goro_ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq %rax, %rdi
    xorl %eax, %eax
    movq %r13, %rsi
    callq *%r12
    ud2
    .cfi_endproc
    .size goro_ctx_trampoline, .-goro_ctx_trampoline

/* void goro_call_on_stack(void* arg /rdi/, void (*fn)(void*) /rsi/, void* top /rdx/);
 *
 * Calls fn(arg) with the stack pointer at `top` (16-byte aligned: the call's
 * push leaves fn the usual entry alignment) and returns on the caller's
 * stack. rbp holds the caller's stack pointer across the call (callee-saved,
 * so fn preserves it); the CFI says so, so unwinders and debuggers walk from
 * fn's frames back onto the caller's stack, and the frame-pointer chain
 * links there too. */
    .globl goro_call_on_stack
    .type goro_call_on_stack, @function
    .p2align 4
goro_call_on_stack:
    .cfi_startproc
    pushq %rbp
    .cfi_def_cfa_offset 16
    .cfi_offset rbp, -16
    movq %rsp, %rbp
    .cfi_def_cfa_register rbp
    movq %rdx, %rsp
    callq *%rsi
    movq %rbp, %rsp
    popq %rbp
    .cfi_def_cfa rsp, 8
    ret
    .cfi_endproc
    .size goro_call_on_stack, .-goro_call_on_stack

    .section .note.GNU-stack,"",@progbits
