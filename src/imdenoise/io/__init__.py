"""Image files: reading and writing (images), format sniffing and suffixes (formats), dataset folders (datasets)."""
