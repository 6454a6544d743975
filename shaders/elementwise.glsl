// 1-D index over a 2-D grid of 256-wide workgroups (vk_ops.c: grid_1d), so more than
// 65535 * 256 elements can be covered.
uint flat_index() {
    return gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
}
