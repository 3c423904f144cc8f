#ifndef BOSSNET_JPEG_DECODER_H
#define BOSSNET_JPEG_DECODER_H

#include <stddef.h>
#include <stdint.h>

/// Decodes a JPEG held in memory to 8-bit RGB, row-major, 3 bytes per pixel, as PIL's
/// `Image.open(f).convert("RGB")` does: libjpeg's defaults (the accurate integer IDCT, fancy upsampling, block
/// smoothing for progressive files), gray replicated, and CMYK or YCCK files read with Adobe's (inverted) polarity and
/// converted with PIL's formula, R = nk - round(c * nk / 255) with nk = 255 - k.
///
/// Images wider or taller than max_side, or with more than max_pixels pixels, are refused before any pixel is read.
/// On success returns 0, sets *width and *height and stores a malloc'd buffer of width * height * 3 bytes in
/// *pixels, which the caller frees with free(). On failure returns -1, leaves *pixels NULL and writes a message into
/// error (at most error_size bytes, NUL-terminated). libjpeg's errors are caught here (its longjmp never crosses into
/// the caller); a file that ends before its last scan is an error (PIL: "image file is truncated"), never a crash.
int bossnet_jpeg_decode(const uint8_t *data, size_t size, uint32_t max_side, uint64_t max_pixels, uint8_t **pixels,
                        uint32_t *width, uint32_t *height, char *error, size_t error_size);

#endif
