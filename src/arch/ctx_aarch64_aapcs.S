/* AArch64 (AAPCS64) context switch.
 *
 * void* goro_ctx_switch(void** save /x0/, void* load /x1/, void* transfer /x2/);
 *
 * Saves what AAPCS64 makes callee-saved: x19-x28, the frame pointer x29, the
 * link register x30, the low 64 bits of v8-v15 (d8-d15), the stack pointer,
 * and FPCR (rounding mode and traps). Not saved: x0-x18, the rest of the
 * vector registers (caller-saved), FPSR (cumulative status flags).
 *
 * Frame at the saved stack pointer (176 bytes, low to high):
 *   [0] x19 x20  [16] x21 x22  [32] x23 x24  [48] x25 x26  [64] x27 x28
 *   [80] x29 x30  [96] d8 d9  [112] d10 d11  [128] d12 d13  [144] d14 d15
 *   [160] FPCR, padding
 * context_aarch64.cc builds the same frame for a fresh context: x30 points at
 * goro_ctx_trampoline, x19 holds the entry function and x20 its argument.
 */
    .text
    .globl goro_ctx_switch
    .type goro_ctx_switch, %function
    .p2align 4
goro_ctx_switch:
    .cfi_startproc
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x9, fpcr
    str x9, [sp, #160]
    mov x9, sp
    str x9, [x0]
    mov sp, x1
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    ldr x9, [sp, #160]
    msr fpcr, x9
    add sp, sp, #176
    mov x0, x2
    ret
    .cfi_endproc
    .size goro_ctx_switch, .-goro_ctx_switch

/* First code of a fresh context: entry(transfer, arg); entry never returns. */
    .globl goro_ctx_trampoline
    .type goro_ctx_trampoline, %function
    .p2align 4
goro_ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov x1, x20
    blr x19
    brk #0
    .cfi_endproc
    .size goro_ctx_trampoline, .-goro_ctx_trampoline

/* void goro_call_on_stack(void* arg /x0/, void (*fn)(void*) /x1/, void* top /x2/);
 * Calls fn(arg) with sp at `top` (16-byte aligned) and returns on the
 * caller's stack; x29 (callee-saved) holds the caller's frame across the
 * call, and the CFI and the frame record say so to unwinders. */
    .globl goro_call_on_stack
    .type goro_call_on_stack, %function
    .p2align 4
goro_call_on_stack:
    .cfi_startproc
    stp x29, x30, [sp, #-16]!
    .cfi_def_cfa_offset 16
    .cfi_offset x29, -16
    .cfi_offset x30, -8
    mov x29, sp
    .cfi_def_cfa_register x29
    mov sp, x2
    blr x1
    mov sp, x29
    .cfi_def_cfa_register sp
    ldp x29, x30, [sp], #16
    .cfi_def_cfa_offset 0
    .cfi_restore x29
    .cfi_restore x30
    ret
    .cfi_endproc
    .size goro_call_on_stack, .-goro_call_on_stack

    .section .note.GNU-stack,"",%progbits
