//! colorize-core: everything about pixels that needs no deep learning.
//!
//! A photo flows one way through colorize: **decode → L at full size → L at render size → network →
//! ab → ab at full size → join with the full-size L → sRGB → encode**. This crate owns every step
//! of that flow except the network:
//!
//! - [`color`]: sRGB (IEC 61966-2-1) ⇄ linear RGB ⇄ CIE XYZ (D65) ⇄ CIELAB, over whole buffers, with
//!   an L-preserving gamut mapping on the way back to sRGB.
//! - [`lab`]: the planar [`LabImage`] type and the join of a full-size L with predicted ab, also
//!   band by band straight into 8/16-bit sRGB ([`lab::join_to_srgb`]) so that a 100-megapixel photo
//!   never needs full-size float planes.
//! - [`files`]: which names are images, and the sorted recursive walk of a folder of photos.
//! - [`io`]: decoding under [`DecodeLimits`] with EXIF orientation, and atomic encoding.
//! - [`resize`]: separable triangle-filter resizing of planar `f32` buffers (bilinear when
//!   enlarging, antialiased when shrinking).
//! - [`metrics`]: PSNR, SSIM and Hasler–Süsstrunk colourfulness.
//! - [`opencv`]: exact re-implementations of the OpenCV / PyTorch / numpy operations of DDColor's
//!   photo pipeline (OpenCV's float Lab, `cv2.resize` INTER_LINEAR, PyTorch nearest, numpy
//!   round-half-even to 8 bits).

pub mod color;
pub mod error;
pub mod files;
pub mod io;
pub mod lab;
pub mod metrics;
pub mod opencv;
pub mod resize;

pub use error::CoreError;
pub use files::{
    IMAGE_EXTENSIONS, ImageWalk, find_images, is_image_path, list_images, walk_images,
};
pub use io::{DecodeLimits, DecodedImage, OutputFormat, decode_image, encode_image_atomic};
pub use lab::LabImage;
