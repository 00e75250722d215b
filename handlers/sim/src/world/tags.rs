//! Tags: PATCH of a resource's tags and the tags API (`Microsoft.Resources/tags/default`).

use serde_json::{json, Value};

use super::body::restamp;
use super::{ArmError, Ctx, OpKind, PendingEvent, Reply, ResPath, World};
use crate::json::obj;

impl World {
    // ------------------------------------------------------------------ PATCH (tags)

    /// PATCH of a top-level resource's tags (synchronous, 200).
    pub(crate) fn patch_tags(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        body: &Value,
    ) -> Result<Reply, ArmError> {
        let tags = body.get("tags").cloned().unwrap_or(json!({}));
        let operation = format!("{}/write", path.type_name());
        let value = self.set_tags(ctx, path, tags, path.id(), operation, "Microsoft.Network")?;
        Ok(Reply::ok(value))
    }

    /// Replaces the tags of a top-level resource (synchronously) and queues the write event.
    fn set_tags(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        tags: Value,
        subject: String,
        operation_name: String,
        resource_provider: &'static str,
    ) -> Result<Value, ArmError> {
        let key = path.parent_key();
        self.check_lock(ctx, &key, &format!("{key}#tags"), OpKind::Put)?;
        self.check_if_match(ctx, path)?;
        let kind = path.kind;
        let res = self
            .map_mut(kind)
            .get_mut(&key)
            .ok_or_else(|| Self::not_found_parent(path))?;
        obj(&mut res.body).insert("tags".into(), tags);
        restamp(&mut res.body, kind);
        let value = res.body.clone();
        self.outbox.push(PendingEvent {
            delete: false,
            subject,
            operation_name,
            resource_provider,
            subscription_id: path.sub.clone(),
            claims: ctx.claims.clone(),
            correlation_id: ctx.correlation_id.clone(),
            http_request: Some(json!({
                "clientRequestId": ctx.client_request_id,
                "clientIpAddress": ctx.client_ip,
                "method": ctx.method,
                "url": ctx.url,
            })),
        });
        Ok(value)
    }

    /// The tags API (`{resource}/providers/Microsoft.Resources/tags/default`): GET, PUT
    /// (replace) and PATCH (`operation`: `Merge`, `Replace` or `Delete`). Writes raise a
    /// `Microsoft.Resources/tags/write` event whose subject is the tags resource id.
    pub(crate) fn tags_resource(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        body: Option<&Value>,
    ) -> Result<Reply, ArmError> {
        let id = format!("{}/providers/Microsoft.Resources/tags/default", path.id());
        let current = self.get(path)?.get("tags").cloned().unwrap_or(json!({}));
        let answer = |tags: Value| json!({"id": id, "name": "default", "type": "Microsoft.Resources/tags", "properties": {"tags": tags}});
        let Some(body) = body else {
            return Ok(Reply::ok(answer(current)));
        };
        let given = body
            .get("properties")
            .and_then(|p| p.get("tags"))
            .cloned()
            .unwrap_or(json!({}));
        let tags = match (
            ctx.method.as_str(),
            body.get("operation").and_then(Value::as_str),
        ) {
            ("PUT", _) | ("PATCH", Some("Replace")) => given,
            ("PATCH", Some("Merge")) => {
                let mut merged = current;
                if let (Some(target), Some(extra)) = (merged.as_object_mut(), given.as_object()) {
                    for (k, v) in extra {
                        target.insert(k.clone(), v.clone());
                    }
                }
                merged
            }
            ("PATCH", Some("Delete")) => {
                let mut kept = current;
                if let (Some(target), Some(gone)) = (kept.as_object_mut(), given.as_object()) {
                    target.retain(|k, v| gone.get(k).is_none_or(|g| g != v));
                }
                kept
            }
            _ => return Err(ArmError::bad_request(
                "InvalidRequestContent",
                "The request content was invalid: 'operation' must be Merge, Replace or Delete.",
            )),
        };
        let value = self.set_tags(
            ctx,
            path,
            tags,
            id.clone(),
            "Microsoft.Resources/tags/write".to_string(),
            "Microsoft.Resources",
        )?;
        Ok(Reply::ok(answer(
            value.get("tags").cloned().unwrap_or(json!({})),
        )))
    }
}
