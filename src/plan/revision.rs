//! Revision identity: a short, stable hash of the pod template.
use k8s_openapi::api::core::v1::PodTemplateSpec;
use sha2::{Digest, Sha256};

/// The revision of a pod template: 10 hex characters of the SHA-256 of its JSON.
/// serde_json writes struct fields in declaration order and maps sorted, so equal
/// templates always hash alike.
pub fn revision_of(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    let digest = Sha256::digest(&json);
    digest[..5].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": { "labels": { "app": "web", "tier": "front" } },
            "spec": { "containers": [{ "name": "web", "image": image }] }
        }))
        .unwrap()
    }

    #[test]
    fn equal_templates_share_a_revision_and_changes_make_a_new_one() {
        assert_eq!(revision_of(&template("web:1")), revision_of(&template("web:1")));
        assert_ne!(revision_of(&template("web:1")), revision_of(&template("web:2")));
        assert_eq!(revision_of(&template("web:1")).len(), 10);
    }

    #[test]
    fn label_order_does_not_change_the_revision() {
        let reordered: PodTemplateSpec = serde_json::from_str(
            r#"{"metadata":{"labels":{"tier":"front","app":"web"}},"spec":{"containers":[{"image":"web:1","name":"web"}]}}"#,
        )
        .unwrap();
        assert_eq!(revision_of(&reordered), revision_of(&template("web:1")));
    }
}
