"""Data as the user gave it: tables read and written in every format (tables.py), and classification data
with detected columns, label ids and a fingerprint (labelled.py)."""
from .labelled import LABEL_COLUMNS, LabelledData, fingerprint, load_data
from .tables import FILE_FORMATS, read_table, source_name, write_rows

__all__ = ["FILE_FORMATS", "LABEL_COLUMNS", "LabelledData", "fingerprint", "load_data", "read_table", "source_name", "write_rows"]
