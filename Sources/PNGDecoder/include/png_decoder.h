#ifndef BOSSNET_PNG_DECODER_H
#define BOSSNET_PNG_DECODER_H

#include <stddef.h>
#include <stdint.h>

/// Decodes a PNG held in memory to 8-bit RGB, row-major, 3 bytes per pixel (gray is replicated, palettes expanded,
/// alpha dropped, 16-bit samples reduced to their high byte, interlacing undone).
///
/// Images wider or taller than max_side, or with more than max_pixels pixels, are refused before any pixel is read.
/// On success returns 0, sets *width and *height and stores a malloc'd buffer of width * height * 3 bytes in
/// *pixels, which the caller frees with free(). On failure returns -1, leaves *pixels NULL and writes a message into
/// error (at most error_size bytes, NUL-terminated). libpng's errors are caught here (its longjmp never crosses into
/// the caller), so a corrupt or truncated file is an error, never a crash.
int bossnet_png_decode(const uint8_t *data, size_t size, uint32_t max_side, uint64_t max_pixels, uint8_t **pixels, uint32_t *width,
                       uint32_t *height, char *error, size_t error_size);

#endif
