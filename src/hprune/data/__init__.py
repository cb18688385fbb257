"""Data as the user gave it: tables read and written in every format (tables.py), classification data
with detected columns, label ids and a fingerprint (labelled.py), and tokenized texts as cached flat
arrays (encoded.py)."""
from .encoded import MODEL_KEYS, TokenArrays, cached_tokenize, tokenize
from .labelled import LABEL_COLUMNS, LabelledData, fingerprint, load_data
from .tables import DATASET_FOLDER, FILE_FORMATS, output_format, read_table, source_name, write_rows

__all__ = ["DATASET_FOLDER", "FILE_FORMATS", "LABEL_COLUMNS", "LabelledData", "MODEL_KEYS", "TokenArrays", "cached_tokenize", "fingerprint", "load_data",
           "output_format", "read_table", "source_name", "tokenize", "write_rows"]
