"""Medical images shared by MLLMU-Med and Med-MIM: loading, DICOM conversion, phantoms."""
