#include <hdf5.h>
#include <hdf5_hl.h>
#include <string.h>

// H5T_NATIVE_*, H5T_STD_*, H5P_* and the H5F_ACC_* flags are macros over global ids (each one
// calls H5open() first) or casts that Swift cannot import directly.
static inline hid_t scalpel_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t scalpel_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t scalpel_h5t_native_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t scalpel_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t scalpel_h5t_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t scalpel_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t scalpel_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t scalpel_h5t_ieee_f64le(void) { return H5T_IEEE_F64LE; }
static inline hid_t scalpel_h5t_std_i32le(void) { return H5T_STD_I32LE; }
static inline hid_t scalpel_h5t_std_i64le(void) { return H5T_STD_I64LE; }
static inline size_t scalpel_h5t_variable(void) { return H5T_VARIABLE; }
static inline hid_t scalpel_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t scalpel_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t scalpel_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t scalpel_h5p_link_create(void) { return H5P_LINK_CREATE; }
static inline hid_t scalpel_h5s_all(void) { return H5S_ALL; }
static inline hsize_t scalpel_h5s_unlimited(void) { return H5S_UNLIMITED; }
static inline unsigned scalpel_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned scalpel_h5f_acc_rdwr(void) { return H5F_ACC_RDWR; }
static inline unsigned scalpel_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned scalpel_h5f_acc_excl(void) { return H5F_ACC_EXCL; }

// Turns off the automatic printing of the error stack. In a thread-safe HDF5 build the setting
// belongs to the calling thread's error stack, so the wrapper calls this before its operations.
static inline void scalpel_h5e_silence(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

typedef struct {
    const char *outer;
    const char *inner;
    int in_use;
} scalpel_h5e_walk_state;

static inline herr_t scalpel_h5e_walk_callback(unsigned n, const H5E_error2_t *err, void *data) {
    (void)n;
    scalpel_h5e_walk_state *state = (scalpel_h5e_walk_state *)data;
    if (err->min_num == H5E_FILEOPEN || err->min_num == H5E_CANTLOCKFILE) state->in_use = 1;
    if (err->desc == NULL || err->desc[0] == '\0') return 0;
    // HDF5 reports a file already open in this process with a generic minor code.
    if (strstr(err->desc, "already open") != NULL) state->in_use = 1;
    if (state->outer == NULL) state->outer = err->desc;
    state->inner = err->desc;
    return 0;
}

static inline void scalpel_h5e_append(char *buffer, size_t size, const char *text) {
    size_t used = strlen(buffer);
    for (; *text != '\0' && used + 1 < size; text++) buffer[used++] = (*text == '\n') ? ' ' : *text;
    buffer[used] = '\0';
}

// Describes the calling thread's current error stack in `buffer` as the API call's description
// and the innermost cause ("unable to open file: file signature not found"). Returns 1 when the
// file is in use (already open in this process, or locked by another), else 0.
static inline int scalpel_h5e_message(char *buffer, size_t size) {
    scalpel_h5e_walk_state state = { NULL, NULL, 0 };
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, scalpel_h5e_walk_callback, &state);
    if (size == 0) return state.in_use;
    buffer[0] = '\0';
    if (state.outer != NULL) scalpel_h5e_append(buffer, size, state.outer);
    if (state.inner != NULL && state.inner != state.outer) {
        scalpel_h5e_append(buffer, size, ": ");
        scalpel_h5e_append(buffer, size, state.inner);
    }
    return state.in_use;
}
