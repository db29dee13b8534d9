"""Style transfer as a benchmark task (paper Sec. 4.3): Johnson et al.'s feed-forward transformer net with a
normalization switch (BN, IN) and optional channel recalibration, trained with VGG-16 perceptual losses."""
