"""The editor widget, its masks, the live preview and the mask popup."""
from .masks import Mask
from .popup import MaskPopup
from .preview import PreviewView
from .widget import Editor, document_text

__all__ = ["Editor", "Mask", "MaskPopup", "PreviewView", "document_text"]
