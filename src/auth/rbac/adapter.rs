//! [`SeaOrmAdapter`], our casbin [`Adapter`] over SeaORM and the `casbin_rule` table, with the
//! helpers converting between casbin rules and `casbin_rule` rows (shared with `policies`).
//!
//! Not here: which rules exist and when they are written (`policies`), the enforcer that
//! loads them (`enforcer`).

use async_trait::async_trait;
use casbin::{Adapter, Filter, Model};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait,
};

use crate::entity::casbin_rule;

pub(super) fn rule_row(ptype: &str, values: &[&str]) -> casbin_rule::ActiveModel {
    let v = |i: usize| Set(values.get(i).map(|s| (*s).to_owned()).unwrap_or_default());
    casbin_rule::ActiveModel {
        id: NotSet,
        ptype: Set(ptype.to_owned()),
        v0: v(0),
        v1: v(1),
        v2: v(2),
        v3: v(3),
        v4: v(4),
        v5: v(5),
    }
}

fn row_values(row: &casbin_rule::Model) -> Vec<String> {
    let mut v = vec![
        row.v0.clone(),
        row.v1.clone(),
        row.v2.clone(),
        row.v3.clone(),
        row.v4.clone(),
        row.v5.clone(),
    ];
    while v.last().is_some_and(String::is_empty) {
        v.pop();
    }
    v
}

/// A casbin [`Adapter`] storing rules in the `casbin_rule` table through SeaORM.
pub struct SeaOrmAdapter {
    db: DatabaseConnection,
    filtered: bool,
}

impl SeaOrmAdapter {
    /// An adapter over `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            filtered: false,
        }
    }
}

fn adapter_err(e: sea_orm::DbErr) -> casbin::Error {
    casbin::error::AdapterError(Box::new(e)).into()
}

fn load_row(m: &mut dyn Model, row: &casbin_rule::Model) {
    let sec = if row.ptype.starts_with('g') { "g" } else { "p" };
    m.add_policy(sec, &row.ptype, row_values(row));
}

fn matches_filter(values: &[String], filter: &[&str]) -> bool {
    filter
        .iter()
        .enumerate()
        .all(|(i, f)| f.is_empty() || values.get(i).map(String::as_str) == Some(*f))
}

#[async_trait]
impl Adapter for SeaOrmAdapter {
    async fn load_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        self.filtered = false;
        for row in casbin_rule::Entity::find()
            .all(&self.db)
            .await
            .map_err(adapter_err)?
        {
            load_row(m, &row);
        }
        Ok(())
    }

    async fn load_filtered_policy<'a>(
        &mut self,
        m: &mut dyn Model,
        f: Filter<'a>,
    ) -> casbin::Result<()> {
        for row in casbin_rule::Entity::find()
            .all(&self.db)
            .await
            .map_err(adapter_err)?
        {
            let values = row_values(&row);
            let filter = if row.ptype.starts_with('g') {
                &f.g
            } else {
                &f.p
            };
            if matches_filter(&values, filter) {
                load_row(m, &row);
            } else {
                self.filtered = true;
            }
        }
        Ok(())
    }

    async fn save_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        let mut rows = Vec::new();
        for sec in ["p", "g"] {
            if let Some(map) = m.get_model().get(sec) {
                for (ptype, ast) in map {
                    for rule in ast.get_policy() {
                        let refs: Vec<&str> = rule.iter().map(String::as_str).collect();
                        rows.push(rule_row(ptype, &refs));
                    }
                }
            }
        }
        let tx = self.db.begin().await.map_err(adapter_err)?;
        casbin_rule::Entity::delete_many()
            .exec(&tx)
            .await
            .map_err(adapter_err)?;
        if !rows.is_empty() {
            casbin_rule::Entity::insert_many(rows)
                .exec(&tx)
                .await
                .map_err(adapter_err)?;
        }
        tx.commit().await.map_err(adapter_err)
    }

    async fn clear_policy(&mut self) -> casbin::Result<()> {
        casbin_rule::Entity::delete_many()
            .exec(&self.db)
            .await
            .map_err(adapter_err)?;
        Ok(())
    }

    fn is_filtered(&self) -> bool {
        self.filtered
    }

    async fn add_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        rule: Vec<String>,
    ) -> casbin::Result<bool> {
        self.add_policies(_sec, ptype, vec![rule]).await
    }

    async fn add_policies(
        &mut self,
        _sec: &str,
        ptype: &str,
        rules: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        if rules.is_empty() {
            return Ok(true);
        }
        let rows = rules.iter().map(|r| {
            let refs: Vec<&str> = r.iter().map(String::as_str).collect();
            rule_row(ptype, &refs)
        });
        casbin_rule::Entity::insert_many(rows)
            .exec(&self.db)
            .await
            .map_err(adapter_err)?;
        Ok(true)
    }

    async fn remove_policy(
        &mut self,
        sec: &str,
        ptype: &str,
        rule: Vec<String>,
    ) -> casbin::Result<bool> {
        self.remove_policies(sec, ptype, vec![rule]).await
    }

    async fn remove_policies(
        &mut self,
        _sec: &str,
        ptype: &str,
        rules: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        let tx = self.db.begin().await.map_err(adapter_err)?;
        let mut removed = 0;
        for rule in rules {
            let mut q =
                casbin_rule::Entity::delete_many().filter(casbin_rule::Column::Ptype.eq(ptype));
            for (i, col) in value_columns().into_iter().enumerate() {
                q = q.filter(col.eq(rule.get(i).cloned().unwrap_or_default()));
            }
            removed += q.exec(&tx).await.map_err(adapter_err)?.rows_affected;
        }
        tx.commit().await.map_err(adapter_err)?;
        Ok(removed > 0)
    }

    async fn remove_filtered_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        field_index: usize,
        field_values: Vec<String>,
    ) -> casbin::Result<bool> {
        let mut q = casbin_rule::Entity::delete_many().filter(casbin_rule::Column::Ptype.eq(ptype));
        for (offset, value) in field_values.into_iter().enumerate() {
            if let Some(col) = value_columns().get(field_index + offset)
                && !value.is_empty()
            {
                q = q.filter(col.eq(value));
            }
        }
        Ok(q.exec(&self.db).await.map_err(adapter_err)?.rows_affected > 0)
    }
}

fn value_columns() -> [casbin_rule::Column; 6] {
    use casbin_rule::Column::*;
    [V0, V1, V2, V3, V4, V5]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_by_position() {
        let v = vec![
            "user:1".to_owned(),
            "role:owner".to_owned(),
            "org:a".to_owned(),
        ];
        assert!(matches_filter(&v, &["", "", "org:a"]));
        assert!(!matches_filter(&v, &["user:2"]));
    }
}
