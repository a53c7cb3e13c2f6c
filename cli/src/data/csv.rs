//! A CSV table for tabular networks: a header line naming the columns,
//! then one sample per row (blank lines skipped). The features are numbers;
//! the label is a class index (an integer) or a class name (names are
//! numbered in sorted order). Fields may be quoted (`"a, b"`, `""` for a
//! quote) but not span lines. A sample is `[1, 1, features]`, which also
//! fits a network taking a flat `[features]` input.

use super::{read_maybe_gz, DataError, Dataset};
use std::path::Path;

/// Which columns are the label and the features.
#[derive(Clone, Copy, Debug, Default)]
pub struct Columns<'a> {
    /// The label column; default the last.
    pub label: Option<&'a str>,
    /// The feature columns in this order; default every other column.
    pub features: Option<&'a [String]>,
}

/// A table's samples, and what it is (with its class names), for
/// messages.
#[derive(Debug)]
pub struct Table {
    pub data: Dataset,
    pub description: String,
}

/// Reads `path` (raw or `.gz`).
pub fn load(path: &Path, columns: Columns<'_>) -> Result<Table, DataError> {
    from_bytes(path, read_maybe_gz(path)?, columns)
}

/// Parses the (decompressed) bytes of a table read from `path`.
pub fn from_bytes(path: &Path, bytes: Vec<u8>, columns: Columns<'_>) -> Result<Table, DataError> {
    let text = String::from_utf8(bytes).map_err(|e| DataError {
        path: path.to_path_buf(),
        problem: format!("is not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })?;
    parse(path, &text, columns)
}

/// Splits a line into fields: commas separate them, double quotes enclose
/// one that may hold commas, `""` inside quotes is a quote, and the space
/// around an unquoted field is trimmed.
fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => {
                        return Err(format!(
                            "field {} opens a quote that the line does not close",
                            out.len() + 1
                        ))
                    }
                }
            }
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            if chars.peek().is_some_and(|c| *c != ',') {
                return Err(format!("field {} has text after its closing quote", out.len() + 1));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                field.push(c);
                chars.next();
            }
            field.truncate(field.trim_end().len());
        }
        out.push(field);
        if chars.next().is_none() {
            return Ok(out);
        }
    }
}

/// The index of column `name` in `header`, which must name it once.
fn column(header: &[String], name: &str, flag: &str) -> Result<usize, String> {
    let mut at = header.iter().enumerate().filter(|(_, h)| *h == name).map(|(i, _)| i);
    match (at.next(), at.next()) {
        (Some(i), None) => Ok(i),
        (Some(i), Some(j)) => Err(format!(
            "{flag} names column `{name}`, which the header has twice (columns {} and {})",
            i + 1,
            j + 1
        )),
        (None, _) => Err(format!(
            "{flag} names column `{name}`, which the header does not have (its columns: {})",
            header.join(", ")
        )),
    }
}

fn parse(path: &Path, text: &str, columns: Columns<'_>) -> Result<Table, DataError> {
    let err = |problem: String| DataError { path: path.to_path_buf(), problem };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines =
        text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
    let (header_line, header) = lines
        .next()
        .ok_or_else(|| err("is empty: expected a header line naming the columns".into()))?;
    let header = fields(header).map_err(|e| err(format!("line {header_line}: {e}")))?;
    let label = match columns.label {
        Some(name) => column(&header, name, "--label-column").map_err(err)?,
        None => header.len() - 1,
    };
    let features: Vec<usize> = match columns.features {
        Some(names) => names
            .iter()
            .map(|n| match column(&header, n, "--features") {
                Ok(i) if i == label => {
                    Err(format!("--features names `{n}`, which is the label column"))
                }
                other => other,
            })
            .collect::<Result<_, _>>()
            .map_err(err)?,
        None => (0..header.len()).filter(|&i| i != label).collect(),
    };
    if features.is_empty() {
        return Err(err(format!(
            "has no feature columns besides the label column `{}`",
            header[label]
        )));
    }
    let mut values = Vec::new();
    let mut raw_labels = Vec::new();
    for (line, text) in lines {
        let row = fields(text).map_err(|e| err(format!("line {line}: {e}")))?;
        if row.len() != header.len() {
            return Err(err(format!(
                "line {line} has {} fields, the header has {} (a ragged row)",
                row.len(),
                header.len()
            )));
        }
        for &f in &features {
            let v = &row[f];
            let at = || format!("line {line}, column `{}`", header[f]);
            match v.parse::<f32>() {
                Ok(x) if x.is_finite() => values.push(x),
                Ok(_) => return Err(err(format!("{}: `{v}` is not a finite number", at()))),
                Err(_) if v.is_empty() => {
                    return Err(err(format!("{}: the value is missing", at())))
                }
                Err(_) => return Err(err(format!("{}: `{v}` is not a number", at()))),
            }
        }
        if row[label].is_empty() {
            return Err(err(format!(
                "line {line}, column `{}`: the label is missing",
                header[label]
            )));
        }
        raw_labels.push((line, row[label].clone()));
    }
    if raw_labels.is_empty() {
        return Err(err(format!("has a header (line {header_line}) but no rows")));
    }
    let (labels, class_names) = classes(&raw_labels, &header[label]).map_err(err)?;
    let rows = labels.len();
    let feature_names: Vec<&str> = features.iter().map(|&f| header[f].as_str()).collect();
    let mut description = format!(
        "the CSV file `{}` ({rows} rows, {} features: {}; labels in column `{}`",
        path.display(),
        features.len(),
        feature_names.join(", "),
        header[label]
    );
    if class_names.is_empty() {
        description.push_str(", class indices)");
    } else {
        let mapping: Vec<String> =
            class_names.iter().enumerate().map(|(i, n)| format!("{i} = {n}")).collect();
        description.push_str(&format!(", classes {})", mapping.join(", ")));
    }
    Ok(Table { data: Dataset::new(values, labels, [1, 1, features.len()]), description })
}

/// Class labels from the label column: integers are class indices (0 to
/// 255); otherwise every distinct value is a class name, numbered in
/// sorted order.
fn classes(raw: &[(usize, String)], column: &str) -> Result<(Vec<u8>, Vec<String>), String> {
    if raw.iter().all(|(_, v)| v.parse::<i64>().is_ok()) {
        let labels = raw
            .iter()
            .map(|(line, v)| {
                v.parse::<u8>().map_err(|_| {
                    format!(
                        "line {line}, column `{column}`: label {v} is not a class index (0 to 255)"
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        return Ok((labels, Vec::new()));
    }
    let mut names: Vec<String> = raw.iter().map(|(_, v)| v.clone()).collect();
    names.sort();
    names.dedup();
    if names.len() > 256 {
        return Err(format!(
            "column `{column}` has {} distinct labels; netc's labels are bytes, so at most 256 classes",
            names.len()
        ));
    }
    let labels = raw.iter().map(|(_, v)| names.binary_search(v).map_or(0, |i| i as u8)).collect();
    Ok((labels, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str, columns: Columns<'_>) -> Result<Table, String> {
        parse(Path::new("t.csv"), text, columns).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_features_and_string_labels() {
        let t = table(
            "a,b,\"name, quoted\",species\n1,2,3,virginica\n\n 4 , 5e-1 ,\"6\",setosa\r\n7,8,9,versicolor\n",
            Columns::default(),
        )
        .expect("valid");
        assert_eq!(t.data.shape, [1, 1, 3]);
        assert_eq!(t.data.images, [1.0, 2.0, 3.0, 4.0, 0.5, 6.0, 7.0, 8.0, 9.0]);
        assert_eq!(t.data.labels, [2, 0, 1]);
        assert!(
            t.description.contains("0 = setosa, 1 = versicolor, 2 = virginica"),
            "{}",
            t.description
        );
    }

    #[test]
    fn chosen_columns_and_integer_labels() {
        let features = ["c".to_string(), "a".to_string()];
        let columns = Columns { label: Some("y"), features: Some(&features) };
        let t = table("y,a,b,c\n3,1,x,2\n0,4,y,5\n", columns).expect("valid");
        assert_eq!(t.data.images, [2.0, 1.0, 5.0, 4.0]);
        assert_eq!(t.data.labels, [3, 0]);
        assert!(t.description.contains("class indices"), "{}", t.description);
        // Quotes hold commas and quotes.
        assert_eq!(fields(r#"a, "b,""c""" ,d"#).expect("fields"), ["a", "b,\"c\"", "d"]);
    }

    #[test]
    fn bad_tables_are_errors_naming_the_file_line_and_column() {
        let check = |text: &str, columns: Columns<'_>, want: &[&str]| {
            let e = table(text, columns).unwrap_err();
            assert!(e.starts_with("`t.csv`"), "{e}");
            for w in want {
                assert!(e.contains(w), "`{w}` missing from: {e}");
            }
        };
        check("", Columns::default(), &["empty"]);
        check("\n  \n", Columns::default(), &["empty"]);
        check("a,b\n", Columns::default(), &["no rows"]);
        check(
            "a,b\n1,2\n3\n",
            Columns::default(),
            &["line 3 has 1 fields", "header has 2", "ragged"],
        );
        check("a,b\n1,2\n3,4,5\n", Columns::default(), &["line 3 has 3 fields"]);
        check("a,b,y\n1,x,0\n", Columns::default(), &["line 2, column `b`", "`x` is not a number"]);
        check("a,b,y\n1,,0\n", Columns::default(), &["line 2, column `b`", "missing"]);
        check("a,b,y\n1,inf,0\n", Columns::default(), &["line 2, column `b`", "finite"]);
        check("a,y\n1,\n", Columns::default(), &["line 2, column `y`", "label is missing"]);
        check("a,y\n1,-1\n", Columns::default(), &["line 2, column `y`", "label -1"]);
        check("a,y\n1,300\n", Columns::default(), &["label 300", "0 to 255"]);
        check("a,y\n1,\"x\n", Columns::default(), &["line 2", "quote"]);
        let label = Columns { label: Some("class"), features: None };
        check("a,y\n1,0\n", label, &["--label-column", "`class`", "columns: a, y"]);
        let twice = Columns { label: Some("a"), features: None };
        check("a,a,y\n1,2,0\n", twice, &["twice", "columns 1 and 2"]);
        let features = ["a".to_string(), "z".to_string()];
        check(
            "a,y\n1,0\n",
            Columns { label: None, features: Some(&features) },
            &["--features", "`z`"],
        );
        let features = ["y".to_string()];
        check("a,y\n1,0\n", Columns { label: None, features: Some(&features) }, &["label column"]);
        check("y\n1\n", Columns::default(), &["no feature columns"]);
        let many: String = (0..300).map(|i| format!("1,c{i}\n")).collect();
        check(&format!("a,y\n{many}"), Columns::default(), &["300 distinct labels", "at most 256"]);
    }

    #[test]
    fn reads_files_and_rejects_unreadable_ones() {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let dir = tmp.path();
        let path = dir.join("t.csv");
        std::fs::write(&path, "\u{feff}x,label\n0.5,b\n1.5,a\n").expect("write");
        let t = load(&path, Columns::default()).expect("valid");
        assert_eq!(
            (t.data.labels.as_slice(), t.data.images.as_slice()),
            (&[1, 0][..], &[0.5, 1.5][..])
        );
        std::fs::write(&path, b"x,label\n\xff,a\n").expect("write");
        assert!(load(&path, Columns::default()).unwrap_err().to_string().contains("UTF-8"));
        let e = load(&dir.join("missing.csv"), Columns::default()).unwrap_err().to_string();
        assert!(e.contains("missing.csv") && e.contains("cannot read"), "{e}");
    }

    /// Corrupt tables are errors or tables of whole rows, never a panic.
    #[test]
    fn corrupt_tables_are_errors() {
        let valid = "a,b,\"c, q\",label\n1,2,3,x\n4,5e-1,\"6\",y\n7,8,9,x\n";
        for bad in crate::mutate::variants(valid.as_bytes(), 1000, 8) {
            let text = String::from_utf8_lossy(&bad);
            if let Ok(t) = table(&text, Columns::default()) {
                let per_row = t.data.shape.iter().product::<usize>();
                assert_eq!(t.data.images.len(), t.data.labels.len() * per_row);
            }
        }
    }
}
