"""Evaluation: MATLAB-exact resize, PSNR/SSIM, the papers' benchmark protocol and cost counting."""
