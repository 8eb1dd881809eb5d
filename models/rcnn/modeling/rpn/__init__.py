"""Region Proposal Network."""

from rcnn.modeling.rpn.rpn import RPN, build_rpn

__all__ = ["RPN", "build_rpn"]
