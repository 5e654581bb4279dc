"""A user's own labelled images: a folder of PNG/JPEG files with one subfolder per class, or an .npz of `x`, `y`.

What is public and what is private. The images and their labels are private. The image size, the number
of channels, the class list and the pixel range describe the data set and are treated as public: the
privacy statement of a release says them. Each comes from the format or from the user, never from the
pixel values: the class list is the class folders' names (or `classes` for an .npz: the labels in `y`
are data, so the set of labels present is never read off them), the pixel range is 0..255 for PNG, JPEG
and uint8 arrays, and must be declared for any other dtype (`pixel_range`). The image size is the files'
common size, or the public `image_size` every image is resized to.

Everything is checked while loading, before any privacy budget is spent, and a problem is one
`ValueError` that names the argument, the file and what is allowed.
"""

import dataclasses
import math
import pathlib

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
UINT8_RANGE = (0.0, 255.0)
# PIL modes read as grey (1 channel) or colour (3 channels); others (alpha, 16-bit, CMYK) are refused.
_GREY_MODES = ("1", "L")
_COLOUR_MODES = ("RGB", "P")


@dataclasses.dataclass(frozen=True)
class ImageData:
    """Labelled images scaled to [0, 1], with the public facts needed to write a release in their format.

    Attributes:
        x: (N, H, W, C) float32 images in [0, 1] (the source range mapped linearly).
        y: (N,) int32 labels in [0, len(classes)).
        classes: the class names, public (folder names or the declared list).
        pixel_range: (low, high) of the source format: (0, 255) for PNG/JPEG and uint8 arrays.
        dtype: numpy dtype name of the source pixels ("uint8", "float32", ...).
        source_format: "folder" or "npz".
        resized: whether every image was resized to the public `image_size`.
    """

    x: np.ndarray
    y: np.ndarray
    classes: tuple
    pixel_range: tuple
    dtype: str
    source_format: str
    resized: bool = False

    def __post_init__(self):
        if self.x.ndim != 4 or self.x.dtype != np.float32 or self.x.shape[-1] not in (1, 3):
            raise ValueError(f"x must be float32 (N, H, W, 1 or 3), got {self.x.dtype} {self.x.shape}")
        if self.y.shape != (len(self.x),) or self.y.dtype != np.int32:
            raise ValueError(f"y must be int32 of shape ({len(self.x)},), got {self.y.dtype} {self.y.shape}")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be at least 2 distinct names, got {list(self.classes)}")
        low, high = self.pixel_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"pixel_range must be finite (low, high) with low < high, got {self.pixel_range}")
        if self.source_format not in ("folder", "npz"):
            raise ValueError(f"source_format must be 'folder' or 'npz', got {self.source_format!r}")

    @property
    def image_shape(self):
        """(H, W, C) of every image: public."""
        return tuple(int(v) for v in self.x.shape[1:])

    def public_description(self):
        """The public facts of the data set, for the privacy statement."""
        height, width, channels = self.image_shape
        return {
            "format": "a folder of PNG/JPEG images, one subfolder per class" if self.source_format == "folder"
            else "an .npz of x (images) and y (labels)",
            "image_shape": [height, width, channels],
            "resized": (f"every image was resized to {height}x{width} (bilinear, antialiased) before training"
                        if self.resized else None),
            "classes": list(self.classes),
            "pixel_range": list(self.pixel_range),
            "dtype": self.dtype,
            "public": (
                "The image size, the number of channels, the class list (from the class folders' names or "
                "--classes) and the pixel range (from the file format or --pixel_range) are treated as public and "
                "are not protected by the guarantee; none of them was read from the pixel values or the labels. "
                "The number of images is private: the number of synthetic images comes from a noisy count."
            ),
        }

    def to_source_format(self, unit_images):
        """`unit_images` in [0, 1] mapped back to the source's range and dtype (uint8: rounded)."""
        low, high = self.pixel_range
        values = low + np.clip(unit_images, 0.0, 1.0).astype(np.float64) * (high - low)
        if np.issubdtype(np.dtype(self.dtype), np.integer):
            return np.rint(values).astype(self.dtype)
        return values.astype(self.dtype)


def parse_pair(text, *, name, kind=float):
    """Two comma-separated numbers, e.g. "0,1" for --pixel_range or "16,16" for --image_size."""
    parts = [part.strip() for part in str(text).replace("x", ",").split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        return tuple(kind(part) for part in parts)
    except ValueError:
        example = "0,1" if kind is float else "16,16"
        raise ValueError(f"{name} must be two comma-separated numbers (e.g. {name}={example}), got {text!r}") from None


def check_pixel_range(pixel_range, *, name="--pixel_range"):
    """(low, high) as floats, finite with low < high."""
    low, high = (float(v) for v in pixel_range)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{name} must be two finite numbers low < high (e.g. 0,1), got {low:g},{high:g}")
    return low, high


def check_image_size(image_size, *, name="--image_size", side_range=(8, 64)):
    """(H, W) as ints in `side_range`."""
    low, high = side_range
    height, width = image_size
    if any(int(side) != side or not low <= side <= high for side in (height, width)):
        raise ValueError(f"{name} must be two integers height,width in [{low}, {high}], got {height},{width}")
    return int(height), int(width)


def check_classes(classes, *, name="--classes"):
    """A tuple of at least two distinct class names, each usable as a folder name."""
    classes = tuple(str(c).strip() for c in classes)
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"{name} must list at least 2 distinct class names, got {list(classes)}")
    for class_name in classes:
        if class_name in ("", ".", "..") or any(c in class_name for c in "/\\\0"):
            raise ValueError(f"{name}: {class_name!r} cannot name a class folder (no empty name, '.', '..', slash)")
    return classes


def _resize(images, image_size):
    """Bilinear, antialiased resize of (N, H, W, C) images in [0, 1] to `image_size` (a public size)."""
    import tensorflow as tf

    return np.clip(tf.image.resize(images, image_size, antialias=True).numpy(), 0.0, 1.0).astype(np.float32)


def _class_folders(root, classes, *, name):
    entries = [entry for entry in sorted(root.iterdir()) if not entry.name.startswith(".")]
    stray = [entry.name for entry in entries if not entry.is_dir()]
    if stray:
        raise ValueError(
            f"{name} {str(root)!r} must hold one subfolder per class and nothing else; found the file {stray[0]!r}"
        )
    found = tuple(entry.name for entry in entries)
    if classes is None:
        if len(found) < 2:
            raise ValueError(f"{name} {str(root)!r} must hold at least 2 class subfolders, found {list(found)}")
        return found
    if set(classes) != set(found):
        raise ValueError(f"--classes {list(classes)} must name exactly the class subfolders of {name} "
                         f"{str(root)!r}: {list(found)}")
    return classes


def _read_image(path, *, name):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode in _GREY_MODES:
                return np.asarray(image.convert("L"), dtype=np.uint8)[..., None]
            if mode in _COLOUR_MODES and "transparency" not in image.info:
                return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{name}: {str(path)!r} is not a readable PNG or JPEG image ({error})") from None
    raise ValueError(f"{name}: {str(path)!r} has pixel mode {mode!r}; allowed: 8-bit grey or RGB without transparency")


def load_image_folder(root, *, classes=None, image_size=None, name="--input"):
    """Reads a folder of PNG/JPEG images with one subfolder per class.

    Args:
        root: the folder; each subfolder is a class, named after it (hidden entries are skipped).
        classes: None (the subfolders in sorted order) or the class names in the order of their labels,
            which must be exactly the subfolders' names.
        image_size: None (every image must have the same size) or the public (H, W) every image is
            resized to.
        name: how to call `root` in messages.

    Returns:
        An `ImageData` with pixel range 0..255, dtype uint8.

    Raises:
        ValueError: for a missing folder, a stray file, fewer than 2 classes, an empty class folder, a file
            that is not an 8-bit grey or RGB PNG/JPEG, images of different sizes (without `image_size`) or
            of different channel counts.
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise ValueError(f"{name} {str(root)!r} is not a folder")
    classes = _class_folders(root, None if classes is None else check_classes(classes), name=name)
    images, labels, first = [], [], None
    for label, class_name in enumerate(classes):
        files = [p for p in sorted((root / class_name).iterdir()) if not p.name.startswith(".")]
        if not files:
            raise ValueError(f"{name}: the class folder {class_name!r} holds no image; every class needs images")
        for path in files:
            if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
                raise ValueError(f"{name}: {str(path)!r} is not a {'/'.join(IMAGE_SUFFIXES)} file")
            image = _read_image(path, name=name)
            if image_size is not None:
                image = _resize(image[None].astype(np.float32) / 255.0, image_size)[0]
            if first is None:
                first = (path, image.shape)
            elif image.shape != first[1]:
                raise ValueError(
                    f"{name}: images must all have one size and channel count; {str(first[0])!r} is "
                    f"{_shape_text(first[1])} but {str(path)!r} is {_shape_text(image.shape)}"
                    + ("" if image_size is not None or image.shape[-1] != first[1][-1] else
                       "; pass --image_size=HEIGHT,WIDTH to resize them all to one public size")
                )
            images.append(image)
            labels.append(label)
    x = np.stack(images)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    return ImageData(x=x, y=np.asarray(labels, np.int32), classes=classes, pixel_range=UINT8_RANGE, dtype="uint8",
                     source_format="folder", resized=image_size is not None)


def _shape_text(shape):
    height, width, channels = shape
    return f"{height}x{width} {'grey' if channels == 1 else 'RGB'}"


def load_image_npz(path, *, classes, pixel_range=None, image_size=None, name="--input"):
    """Reads an .npz with `x` (N, H, W) or (N, H, W, C) images (C = 1 or 3) and `y` (N,) integer labels.

    Args:
        path: the .npz file.
        classes: the class names in the order of their labels (public; at least 2); the labels in `y`
            must be in [0, len(classes)).
        pixel_range: the public (low, high) of the pixel values: None for uint8 (0..255); required for any
            other dtype (never inferred from the data).
        image_size: None or the public (H, W) every image is resized to.
        name: how to call `path` in messages.

    Returns:
        An `ImageData`.

    Raises:
        ValueError: for a missing key, a wrong shape or dtype, a label outside the classes, a float
            array without `pixel_range`, or a value outside `pixel_range`.
    """
    path = pathlib.Path(path)
    classes = check_classes(classes)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [key for key in ("x", "y") if key not in arrays.files]
            if missing:
                raise ValueError(f"{name} {str(path)!r} has no array {missing[0]!r} (it needs x and y), "
                                 f"found {arrays.files}")
            x, y = arrays["x"], arrays["y"]
    except (OSError, EOFError) as error:
        raise ValueError(f"{name} {str(path)!r} cannot be read as an .npz file ({error})") from None
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or len(x) == 0:
        raise ValueError(f"{name}: x must be (N, H, W) or (N, H, W, 1 or 3) with N >= 1, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"{name}: x must hold integer or float pixels, got {x.dtype}")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name}: y must be {len(x)} integer labels (shape ({len(x)},)), got {y.dtype} {y.shape}")
    if y.min() < 0 or y.max() >= len(classes):
        raise ValueError(f"{name}: y must be labels in [0, {len(classes)}) for the {len(classes)} --classes; a label "
                         f"is outside it")
    if pixel_range is None:
        if x.dtype != np.uint8:
            raise ValueError(f"{name}: x is {x.dtype}: its pixel range must be declared with --pixel_range=LOW,HIGH "
                             "(e.g. 0,1); only uint8 pixels have a range from the format (0..255)")
        pixel_range = UINT8_RANGE
    low, high = check_pixel_range(pixel_range)
    # The check compares each value with the declared, public bounds; only a yes/no reaches the user running it.
    if not np.all(np.isfinite(x)) or x.min() < low or x.max() > high:
        raise ValueError(f"{name}: x has values outside --pixel_range [{low:g}, {high:g}] (or not finite); "
                         "declare the range of the format the images come in")
    unit = ((x.astype(np.float64) - low) / (high - low)).astype(np.float32)
    if image_size is not None:
        unit = _resize(unit, image_size)
    return ImageData(x=unit, y=y.astype(np.int32), classes=classes, pixel_range=(low, high), dtype=str(x.dtype),
                     source_format="npz", resized=image_size is not None)


def write_png_folders(folder, images, labels, *, classes):
    """Writes uint8 `images` (N, H, W, C) as PNG files, one subfolder per class: folder/<class>/<index>.png."""
    from PIL import Image

    folder = pathlib.Path(folder)
    for class_name in classes:
        (folder / class_name).mkdir(parents=True, exist_ok=True)
    width = len(str(max(len(images) - 1, 0)))
    for index, (image, label) in enumerate(zip(images, labels)):
        array = image[..., 0] if image.shape[-1] == 1 else image
        Image.fromarray(array).save(folder / classes[int(label)] / f"{index:0{width}d}.png")
