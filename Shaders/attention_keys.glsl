// Shared by attention_rows.comp and attention.comp (included after their bindings, push constants and D).
#ifndef BOSSNET_ATTENTION_KEYS_GLSL
#define BOSSNET_ATTENTION_KEYS_GLSL

// Which query token i of which image n and head h this invocation computes (item = (n * heads + h) * T + i), and where
// its q, k and v channels start in qkv. With SHUFFLE_KEYS a workgroup's lanes are query tokens of one (image, head),
// workgroup y; lanes past the last token compute the last one again (they take part in the shuffles) and store
// nothing (`stores`).
#define ATTENTION_BASES                                                                                                \
    const int T = int(p.tokens);                                                                                       \
    const int image = int(n * 3u * p.heads * D) * T;                                                                   \
    const int q_base = image + int(h * D) * T;                                                                         \
    const int k_base = image + int((p.heads + h) * D) * T;                                                             \
    const int v_base = image + int((2u * p.heads + h) * D) * T;
#if defined(SHUFFLE_KEYS)
#define ATTENTION_ITEM                                                                                                 \
    const uint query = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x;                                 \
    const bool stores = query < p.tokens;                                                                              \
    const uint i = min(query, p.tokens - 1u);                                                                          \
    const uint h = gl_WorkGroupID.y % p.heads, n = gl_WorkGroupID.y / p.heads;                                         \
    const uint item = (n * p.heads + h) * p.tokens + i;                                                                \
    ATTENTION_BASES
#else
#define ATTENTION_ITEM                                                                                                 \
    const uint item = flat_invocation();                                                                               \
    if (item >= p.batch * p.heads * p.tokens) return;                                                                  \
    const bool stores = true;                                                                                          \
    const uint i = item % p.tokens;                                                                                    \
    const uint h = (item / p.tokens) % p.heads;                                                                        \
    const uint n = item / (p.tokens * p.heads);                                                                        \
    ATTENTION_BASES
#endif

#if defined(SHUFFLE_KEYS)
// The first 8 lanes' key, j0 + lane (past the end: the last key).
int block_key(int T, int j0) { return min(j0 + int(gl_SubgroupInvocationID & 7u), T - 1); }

// This invocation's logits against keys j0 .. j0+7 (past the end they repeat the last key's): the first 8 lanes fetch
// one key each, channel by channel, and every lane takes each one by a shuffle (one instruction on lavapipe, where a
// fetch is per lane: all lanes fetching the same key cost 8 fetches of it).
void block_logits(float q[D], int k_base, int T, int j0, out float logit[8]) {
    const int j = block_key(T, j0);
    [[unroll]] for (uint u = 0u; u < 8u; ++u) logit[u] = 0.0;
    [[unroll]] for (uint c = 0u; c < D; ++c) {
        const float kc = LOAD_QKV(k_base + int(c) * T + j);
        [[unroll]] for (uint u = 0u; u < 8u; ++u) logit[u] += q[c] * subgroupShuffle(kc, u);
    }
}
#endif

#endif
