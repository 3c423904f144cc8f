#include "jpeg_decoder.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

typedef struct {
    struct jpeg_error_mgr manager;
    jmp_buf escape;
    char *error;
    size_t error_size;
} error_state;

static void on_error(j_common_ptr cinfo) {
    error_state *state = (error_state *)cinfo->err;
    char message[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, message);
    if (state->error && state->error_size > 0) snprintf(state->error, state->error_size, "%s", message);
    longjmp(state->escape, 1);
}

/* Warnings are not printed. Running out of data is an error, as in PIL; other warnings (extraneous bytes before a
   marker, say) let decoding go on, as in PIL. */
static void on_message(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        error_state *state = (error_state *)cinfo->err;
        if (state->error && state->error_size > 0) snprintf(state->error, state->error_size, "the file ends early (truncated)");
        longjmp(state->escape, 1);
    }
}

static uint8_t clip8(int value) { return (uint8_t)(value < 0 ? 0 : value > 255 ? 255 : value); }

/* PIL's MULDIV255: a * b / 255, rounded. */
static int muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

int bossnet_jpeg_decode(const uint8_t *data, size_t size, uint32_t max_side, uint64_t max_pixels, uint8_t **pixels,
                        uint32_t *width, uint32_t *height, char *error, size_t error_size) {
    *pixels = NULL;
    if (error_size > 0) error[0] = 0;
    if (size < 3 || data[0] != 0xFF || data[1] != 0xD8 || data[2] != 0xFF) {
        snprintf(error, error_size, "not a JPEG file (bad signature)");
        return -1;
    }
    struct jpeg_decompress_struct cinfo;
    error_state state;
    memset(&cinfo, 0, sizeof(cinfo));
    cinfo.err = jpeg_std_error(&state.manager);
    state.manager.error_exit = on_error;
    state.manager.emit_message = on_message;
    state.error = error;
    state.error_size = error_size;
    /* volatile: these change after setjmp and are read after a longjmp. */
    uint8_t *volatile rgb = NULL;
    uint8_t *volatile row = NULL;
    if (setjmp(state.escape)) {
        free(rgb);
        free(row);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.image_width == 0 || cinfo.image_height == 0 || cinfo.image_width > max_side || cinfo.image_height > max_side ||
        (uint64_t)cinfo.image_width * cinfo.image_height > max_pixels) {
        snprintf(error, error_size, "the image is %ux%u pixels; at most %u per side and %llu in all are accepted",
                 cinfo.image_width, cinfo.image_height, max_side, (unsigned long long)max_pixels);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo.out_color_space = JCS_GRAYSCALE; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo.out_color_space = JCS_CMYK; break;
    default: cinfo.out_color_space = JCS_RGB; break;
    }
    jpeg_start_decompress(&cinfo);
    const uint32_t w = cinfo.output_width, h = cinfo.output_height;
    const int components = cinfo.output_components;
    rgb = malloc((size_t)w * h * 3);
    row = malloc((size_t)w * (size_t)components);
    if (!rgb || !row) {
        snprintf(error, error_size, "out of memory for a %ux%u image", w, h);
        longjmp(state.escape, 1);
    }
    while (cinfo.output_scanline < h) {
        uint8_t *out = rgb + (size_t)cinfo.output_scanline * w * 3;
        JSAMPROW rows[1] = {row};
        if (jpeg_read_scanlines(&cinfo, rows, 1) != 1) {
            snprintf(error, error_size, "the file ends early (truncated)");
            longjmp(state.escape, 1);
        }
        for (uint32_t x = 0; x < w; x++) {
            const uint8_t *in = row + (size_t)x * components;
            if (components == 1) {
                out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[0];
            } else if (components == 3) {
                memcpy(out + 3 * x, in, 3);
            } else {
                /* Stored inverted (Adobe): c = 255 - in[0], ..., nk = 255 - k = in[3]. */
                const int nk = in[3];
                for (int c = 0; c < 3; c++) out[3 * x + c] = clip8(nk - muldiv255(255 - in[c], nk));
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    *pixels = rgb;
    *width = w;
    *height = h;
    return 0;
}
