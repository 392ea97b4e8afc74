"""Host adapters. Only hosts/a1111.py imports A1111's `modules`."""
