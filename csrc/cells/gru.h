// GRU cell, PyTorch's equations and gate order r, z, n, or with its option
// (gate order 'zrn') Keras's z, r, n, in the columns of Wx, Wh, b, bh and
// their gradients (G = 3H):
//   r = sigmoid(x·Wx_r + b_r + h_{t-1}·Wh_r + bh_r)
//   z = sigmoid(x·Wx_z + b_z + h_{t-1}·Wh_z + bh_z)
//   n = tanh(x·Wx_n + b_n + r * (h_{t-1}·Wh_n + bh_n))
//   h_t = (1 - z) * n + z * h_{t-1}
//   x (N,T,D), h0 (N,H), Wx (D,3H), Wh (H,3H), b and bh (3H); h (N,T,H) out,
//   and saved (N,T,4H): r, z, n and hn = h_{t-1}·Wh_n + bh_n.
// r scales h·Wh_n alone, so x·Wx is never summed into the step's products
// (not fusable), and the gradient of h·Wh + bh (dah: dr, dz, dn * r) differs
// from that of x·Wx + b (da: dr, dz, dn). The backward carries z * dh_t,
// h_t's direct path to h_{t-1}. Read twice, like every cell file (see rnn.h).
#ifndef RNN_FAST_CELL_BODIES
#ifndef RNN_FAST_CELLS_GRU_H
#define RNN_FAST_CELLS_GRU_H
#include "cell.h"

namespace rnn_fast {

struct Gru {
    static constexpr const char* name = "gru";
    static constexpr int gates = 3;  // G = 3H
    static constexpr int saved = 4;  // r, z, n, hn (x·Wx + b in the first three on entry)
    static constexpr Carry carry = Carry::hidden;
    static constexpr bool split = true, fusable = false, recurrent_bias = true, reads_prev_h = true;
    int option = 0;  // 1: gate order z, r, n
    template <typename T>
    static const CellBody<T>& body(const Kernels<T>& k) { return k.gru; }
};

}  // namespace rnn_fast
#endif
#else  // the SIMD bodies

// Forward: gates holds x·Wx + b (r, z, n, or z, r, n) on entry and r, z, n,
// hn on exit; acc holds h_{t-1}·Wh; h = n + z * (h_{t-1} - n).
template <typename T, int L>
void gru_forward_body(const CellArgs<T>& a) {
    const index_t gs = a.gs, as = a.acc_gs;
    const int at[2] = {a.option ? 1 : 0, a.option ? 0 : 1};  // the column blocks of r and z
    const T *acc = a.acc, *hp = a.hp;
    T *g = a.gates, *h = a.h;
    for (index_t r = 0; r < a.rows; ++r, acc += a.acc_rs, g += a.gates_rs, hp += a.prs, h += a.rs) {
        if (r + kAhead < a.rows) {
            for (int q = 0; q < 4; ++q) fetch_row<1>(g + kAhead * a.gates_rs + q * gs, a.n);
            fetch_row<0>(hp + kAhead * a.prs, a.n);
            fetch_row<1>(h + kAhead * a.rs, a.n);
        }
        for_vectors<T, L>(a.n, [&](index_t k, auto full, index_t m) {
            constexpr bool F = decltype(full)::value;
            V<T, L> v[2];  // r and z, side by side
            for (int q = 0; q < 2; ++q)
                v[q] = ld<T, L, F>(g + at[q] * gs + k, m) + load<T, L>(acc + at[q] * as + k) +
                       ld<T, L, F>(a.rbias + at[q] * gs + k, m);
            if constexpr (sizeof(T) == 4) vtanh_rational_n<T, L, 2, 2>(v);
            else for (int q = 0; q < 2; ++q) v[q] = vsigmoid<T, L>(v[q]);
            const V<T, L> hn = load<T, L>(acc + 2 * as + k) + ld<T, L, F>(a.rbias + 2 * gs + k, m);
            const V<T, L> n = vtanh<T, L>(vfma<T, L>(v[0], hn, ld<T, L, F>(g + 2 * gs + k, m)));
            const V<T, L> p = ld<T, L, F>(hp + k, m);
            st<T, L, F>(g + k, v[0], m);
            st<T, L, F>(g + gs + k, v[1], m);
            st<T, L, F>(g + 2 * gs + k, n, m);
            st<T, L, F>(g + 3 * gs + k, hn, m);
            st<T, L, F>(h + k, vfma<T, L>(v[1], p - n, n), m);
        });
    }
}

// Backward of one step, from the saved r, z, n, hn and h_{t-1}: dh + acc +
// carry is the total gradient of h_t (carry: z * that of h_{t+1}, on entry;
// on exit z * this step's); da (dr, dz, dn) and dah (dr, dz, dn * r), the
// gradients of x·Wx + b and of h·Wh + bh (dz first with gate order z, r, n).
template <typename T, int L>
void gru_backward_body(const CellArgs<T>& a) {
    const index_t gs = a.gs;
    const index_t ro = a.option ? gs : 0, zo = a.option ? 0 : gs;  // the column blocks of r and z
    const T *dh = a.dh, *acc = a.acc, *g = a.gates, *hp = a.hp;
    T *carry = a.carry, *da = a.da, *dah = a.dah;
    for (index_t r = 0; r < a.rows;
         ++r, dh += a.rs, acc += a.acc_rs, g += a.gates_rs, hp += a.prs, carry += a.carry_rs, da += a.da_rs,
         dah += a.da_rs) {
        for_vectors<T, L>(a.n, [&](index_t k, auto full, index_t m) {
            constexpr bool F = decltype(full)::value;
            const V<T, L> rv = ld<T, L, F>(g + k, m), z = ld<T, L, F>(g + gs + k, m);
            const V<T, L> n = ld<T, L, F>(g + 2 * gs + k, m), hn = ld<T, L, F>(g + 3 * gs + k, m);
            const V<T, L> dht = ld<T, L, F>(dh + k, m) + load<T, L>(acc + k) + ld<T, L, F>(carry + k, m);
            const V<T, L> dn = dht * (T(1) - z) * (T(1) - n * n);
            const V<T, L> dz = dht * (ld<T, L, F>(hp + k, m) - n) * z * (T(1) - z);
            const V<T, L> dr = dn * hn * rv * (T(1) - rv);
            st<T, L, F>(da + ro + k, dr, m);
            st<T, L, F>(da + zo + k, dz, m);
            st<T, L, F>(da + 2 * gs + k, dn, m);
            st<T, L, F>(dah + ro + k, dr, m);
            st<T, L, F>(dah + zo + k, dz, m);
            st<T, L, F>(dah + 2 * gs + k, dn * rv, m);
            st<T, L, F>(carry + k, dht * z, m);
        });
    }
}
#endif
