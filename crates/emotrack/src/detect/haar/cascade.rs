//! OpenCV's Haar cascade XML (the `opencv-cascade-classifier` format written by
//! `opencv_traincascade`), parsed with `roxmltree`.
//!
//! The file holds a window size, a list of boosted stages (each a threshold and weak decision
//! trees whose nodes compare one Haar feature with a threshold) and the list of features (two or
//! three weighted rectangles inside the window). Numbers are read the way OpenCV reads them:
//! as `f64`, then narrowed to `f32`; each stage threshold is lowered by OpenCV's `1e-5` epsilon.
//!
//! Supported: `BOOST` stages over upright `HAAR` features, stumps or deeper trees. Rejected with
//! a message: LBP/HOG cascades, tilted (45°) features and the pre-2.0 `opencv-haar-classifier`
//! layout.

use std::io::Read;
use std::path::{Path, PathBuf};

use roxmltree::{Document, Node};

use crate::error::{Error, Result};

/// OpenCV lowers every stage threshold by this much when loading (`THRESHOLD_EPS`).
const STAGE_THRESHOLD_EPS: f32 = 1e-5;

/// A rectangle of a Haar feature, in window pixels, with its weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WeightedRect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    pub weight: f32,
}

/// One Haar feature: up to three weighted rectangles (unused ones have weight 0).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Feature {
    pub rects: [WeightedRect; 3],
}

/// A node of a weak decision tree. `left`/`right` > 0 index another node of the same tree,
/// ≤ 0 name leaf `-left` / `-right` of the tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TreeNode {
    pub feature: usize,
    pub threshold: f32,
    pub left: i32,
    pub right: i32,
}

/// A weak classifier: its nodes and leaves (`nodes.len() + 1` of them) in the flat arrays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tree {
    pub first_node: usize,
    pub node_count: usize,
    pub first_leaf: usize,
}

/// A boosted stage: the sum of its trees' leaves must reach `threshold` to pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stage {
    pub threshold: f32,
    pub first_tree: usize,
    pub tree_count: usize,
}

/// A parsed Haar cascade, ready for [`super::HaarDetector`].
#[derive(Debug, Clone, PartialEq)]
pub struct HaarCascade {
    pub(crate) window_w: u32,
    pub(crate) window_h: u32,
    pub(crate) stages: Vec<Stage>,
    pub(crate) trees: Vec<Tree>,
    pub(crate) nodes: Vec<TreeNode>,
    pub(crate) leaves: Vec<f32>,
    pub(crate) features: Vec<Feature>,
}

/// OpenCV's `haarcascade_frontalface_default.xml` (see `models/NOTICE.md` for its origin).
const FRONTAL_FACE_DEFAULT: &str =
    include_str!("../../../../../models/haarcascade_frontalface_default.xml");

/// Name used in errors about the embedded model.
const EMBEDDED: &str = "<embedded haarcascade_frontalface_default.xml>";

impl HaarCascade {
    /// OpenCV's frontal face cascade (Rainer Lienhart's, 25 stages, 24x24 window), embedded in
    /// the binary.
    pub fn frontal_face_default() -> Result<Self> {
        Self::from_xml(FRONTAL_FACE_DEFAULT, Path::new(EMBEDDED))
    }

    /// Reads a cascade XML file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_xml(&text, path)
    }

    /// Reads a cascade XML from any reader; `origin` names it in error messages.
    pub fn from_reader(mut reader: impl Read, origin: impl AsRef<Path>) -> Result<Self> {
        let origin = origin.as_ref();
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .map_err(|source| Error::Io {
                path: origin.to_path_buf(),
                source,
            })?;
        Self::from_xml(&text, origin)
    }

    /// Parses cascade XML text; `origin` names it in error messages.
    pub fn from_xml(text: &str, origin: &Path) -> Result<Self> {
        let err = |message: String| Error::model(PathBuf::from(origin), message);
        let doc = Document::parse(text).map_err(|e| err(format!("not valid XML: {e}")))?;
        parse_cascade(&doc).map_err(err)
    }

    /// The detection window `(width, height)` the cascade was trained on.
    pub fn window_size(&self) -> (u32, u32) {
        (self.window_w, self.window_h)
    }

    /// Number of boosted stages.
    pub fn stage_count(&self) -> usize {
        self.stages.len()
    }

    /// Number of weak classifiers over all stages.
    pub fn weak_count(&self) -> usize {
        self.trees.len()
    }

    /// Number of Haar features.
    pub fn feature_count(&self) -> usize {
        self.features.len()
    }

    /// Whether every weak classifier is a single split (a stump), which has a faster path.
    pub(crate) fn is_stump_based(&self) -> bool {
        self.trees.iter().all(|t| t.node_count == 1)
    }
}

/// The message-only error used while parsing; wrapped with the file name by the caller.
type ParseResult<T> = std::result::Result<T, String>;

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.has_tag_name(name))
}

fn required<'a, 'i>(node: Node<'a, 'i>, name: &str, context: &str) -> ParseResult<Node<'a, 'i>> {
    child(node, name).ok_or_else(|| format!("{context} has no <{name}> element"))
}

fn text_of<'a>(node: Node<'a, '_>) -> &'a str {
    node.text().unwrap_or("").trim()
}

fn elements<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(|c| c.is_element())
}

fn parse_int(token: &str, what: &str) -> ParseResult<i64> {
    // OpenCV writes integers plainly but reads any number into an int field, so accept "3." too.
    if let Ok(v) = token.parse::<i64>() {
        return Ok(v);
    }
    match token.parse::<f64>() {
        Ok(v) if v.fract() == 0.0 && v.abs() < 1e15 => Ok(v as i64),
        _ => Err(format!("{what}: expected an integer, found {token:?}")),
    }
}

fn parse_real(token: &str, what: &str) -> ParseResult<f32> {
    // OpenCV parses reals as f64 and narrows them; parsing straight to f32 could round
    // differently in the last bit.
    let v: f64 = token
        .parse()
        .map_err(|_| format!("{what}: expected a number, found {token:?}"))?;
    if !v.is_finite() {
        return Err(format!("{what}: {token:?} is not a finite number"));
    }
    Ok(v as f32)
}

fn parse_dim(node: Node<'_, '_>, name: &str) -> ParseResult<u32> {
    let n = required(node, name, "<cascade>")?;
    let v = parse_int(text_of(n), name)?;
    if !(1..=10_000).contains(&v) {
        return Err(format!("<{name}> is {v}, it must be between 1 and 10000"));
    }
    Ok(v as u32)
}

fn parse_cascade(doc: &Document<'_>) -> ParseResult<HaarCascade> {
    let storage = doc.root_element();
    // OpenCV takes the first top-level node, whatever its name ("cascade" in current files).
    let root = elements(storage)
        .next()
        .ok_or("the file has no cascade element inside its root")?;
    if root.attribute("type_id") == Some("opencv-haar-classifier") {
        return Err(
            "this is the old (OpenCV 1.x) cascade layout, which is not supported; \
                    use a cascade in the `opencv-cascade-classifier` format, such as OpenCV 4's \
                    data/haarcascades files"
                .into(),
        );
    }
    let stage_type = text_of(required(root, "stageType", "the cascade")?);
    if stage_type != "BOOST" {
        return Err(format!(
            "stageType is {stage_type:?}, only \"BOOST\" is supported"
        ));
    }
    let feature_type = text_of(required(root, "featureType", "the cascade")?);
    if feature_type != "HAAR" {
        return Err(format!(
            "featureType is {feature_type:?}; this detector reads HAAR cascades only (not LBP or HOG)"
        ));
    }
    let window_w = parse_dim(root, "width")?;
    let window_h = parse_dim(root, "height")?;

    let features = parse_features(
        required(root, "features", "the cascade")?,
        window_w,
        window_h,
    )?;
    let mut cascade = HaarCascade {
        window_w,
        window_h,
        stages: Vec::new(),
        trees: Vec::new(),
        nodes: Vec::new(),
        leaves: Vec::new(),
        features,
    };
    parse_stages(required(root, "stages", "the cascade")?, &mut cascade)?;
    if cascade.stages.is_empty() {
        return Err("<stages> is empty".into());
    }
    Ok(cascade)
}

fn parse_stages(stages: Node<'_, '_>, c: &mut HaarCascade) -> ParseResult<()> {
    for (si, stage) in elements(stages).enumerate() {
        let ctx = format!("stage {si}");
        let threshold = parse_real(
            text_of(required(stage, "stageThreshold", &ctx)?),
            &format!("{ctx} stageThreshold"),
        )? - STAGE_THRESHOLD_EPS;
        let weak = required(stage, "weakClassifiers", &ctx)?;
        let first_tree = c.trees.len();
        for (wi, tree) in elements(weak).enumerate() {
            let ctx = format!("stage {si} weak classifier {wi}");
            parse_tree(tree, &ctx, c)?;
        }
        let tree_count = c.trees.len() - first_tree;
        if tree_count == 0 {
            return Err(format!("{ctx} has no weak classifiers"));
        }
        c.stages.push(Stage {
            threshold,
            first_tree,
            tree_count,
        });
    }
    Ok(())
}

fn parse_tree(tree: Node<'_, '_>, ctx: &str, c: &mut HaarCascade) -> ParseResult<()> {
    let internal = text_of(required(tree, "internalNodes", ctx)?);
    let leaves = text_of(required(tree, "leafValues", ctx)?);
    let tokens: Vec<&str> = internal.split_ascii_whitespace().collect();
    // Each node is `left right featureIndex threshold` (categorical LBP nodes differ).
    if tokens.is_empty() || !tokens.len().is_multiple_of(4) {
        return Err(format!(
            "{ctx}: internalNodes has {} numbers, expected groups of 4 (left right feature threshold)",
            tokens.len()
        ));
    }
    let node_count = tokens.len() / 4;
    let first_node = c.nodes.len();
    let first_leaf = c.leaves.len();
    for (ni, n) in tokens.chunks_exact(4).enumerate() {
        let what = format!("{ctx} node {ni}");
        let left = parse_int(n[0], &what)?;
        let right = parse_int(n[1], &what)?;
        let feature = parse_int(n[2], &what)?;
        let threshold = parse_real(n[3], &what)?;
        if feature < 0 || feature as usize >= c.features.len() {
            return Err(format!(
                "{what} uses feature {feature}, but the file has {} features",
                c.features.len()
            ));
        }
        for child in [left, right] {
            // Children point forward to a node (> 0) or at a leaf (≤ 0).
            let ok = if child > 0 {
                (child as usize) < node_count && child as usize > ni
            } else {
                (-child as usize) <= node_count
            };
            if !ok {
                return Err(format!("{what} has an invalid child index {child}"));
            }
        }
        c.nodes.push(TreeNode {
            feature: feature as usize,
            threshold,
            left: left as i32,
            right: right as i32,
        });
    }
    let leaf_count = leaves.split_ascii_whitespace().count();
    if leaf_count != node_count + 1 {
        return Err(format!(
            "{ctx}: {leaf_count} leaf values for {node_count} nodes, expected {}",
            node_count + 1
        ));
    }
    for token in leaves.split_ascii_whitespace() {
        c.leaves
            .push(parse_real(token, &format!("{ctx} leafValues"))?);
    }
    c.trees.push(Tree {
        first_node,
        node_count,
        first_leaf,
    });
    Ok(())
}

fn parse_features(node: Node<'_, '_>, win_w: u32, win_h: u32) -> ParseResult<Vec<Feature>> {
    let mut out = Vec::new();
    for (fi, f) in elements(node).enumerate() {
        let ctx = format!("feature {fi}");
        if let Some(t) = child(f, "tilted")
            && parse_int(text_of(t), &ctx)? != 0
        {
            return Err(format!(
                "{ctx} is tilted (45°); only upright Haar features are supported \
                 (cascades trained with -mode BASIC or CORE)"
            ));
        }
        let rects = required(f, "rects", &ctx)?;
        let empty = WeightedRect {
            x: 0,
            y: 0,
            w: 0,
            h: 0,
            weight: 0.0,
        };
        let mut feature = Feature { rects: [empty; 3] };
        let mut count = 0;
        for r in elements(rects) {
            if count == 3 {
                return Err(format!("{ctx} has more than 3 rectangles"));
            }
            let t: Vec<&str> = text_of(r).split_ascii_whitespace().collect();
            if t.len() != 5 {
                return Err(format!(
                    "{ctx} rectangle {count}: expected `x y width height weight`, found {:?}",
                    text_of(r)
                ));
            }
            let what = format!("{ctx} rectangle {count}");
            let [x, y, w, h] = [t[0], t[1], t[2], t[3]].map(|s| parse_int(s, &what));
            let (x, y, w, h) = (x?, y?, w?, h?);
            if x < 0
                || y < 0
                || w < 0
                || h < 0
                || x + w > i64::from(win_w)
                || y + h > i64::from(win_h)
            {
                return Err(format!(
                    "{what} ({x}, {y}, {w}, {h}) does not fit the {win_w}x{win_h} window"
                ));
            }
            feature.rects[count] = WeightedRect {
                x: x as u32,
                y: y as u32,
                w: w as u32,
                h: h as u32,
                weight: parse_real(t[4], &what)?,
            };
            count += 1;
        }
        if count < 2 {
            return Err(format!(
                "{ctx} has {count} rectangles, a Haar feature needs 2 or 3"
            ));
        }
        out.push(feature);
    }
    if out.is_empty() {
        return Err("<features> is empty".into());
    }
    Ok(out)
}
