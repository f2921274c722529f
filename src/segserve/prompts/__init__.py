"""Optional LLM prompt refinement for langsam: free text → detector phrases, never failing a segmentation."""
