"""Media codecs: images in (bytes, base64, URLs with the SSRF guard), masks out (RLE, PNG, polygons, overlays)."""
