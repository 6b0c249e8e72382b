//! The services part of the SQL [`Store`](crate::Store): `services_sql!`, expanded by `sql_store!`
//! (`sql/mod.rs`) beside the imports and shared helpers it uses.

macro_rules! services_sql {
    (
        $store:ident,
        byte_order = $byte_order:literal
    ) => {
        impl $store {
            async fn service_from_row(&self, row: &DbRow) -> StoreResult<Service> {
                let id: i64 = row.try_get("id")?;
                let roles = self
                    .names(
                        concat!(
                            "SELECT r.name FROM service_roles sr JOIN roles r ON r.id = sr.role_id ",
                            "WHERE sr.service_id = $1 ORDER BY r.name ",
                            $byte_order
                        ),
                        id,
                    )
                    .await?;
                Ok(Service {
                    name: name("service name", row.try_get("name")?, ServiceName::parse)?,
                    admin: row.try_get("admin")?,
                    created: timestamp(row.try_get("created")?)?,
                    roles: parse_names("role name", roles, RoleName::parse)?,
                })
            }

            async fn sql_put_service(&self, service: &ServiceName, admin: bool) -> StoreResult<Service> {
                let _auth_change = self.auth_change();
                sqlx::query(
                    "INSERT INTO services (name, admin, created) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET admin = excluded.admin",
                )
                .bind(service.as_str())
                .bind(admin)
                .bind(micros(now()))
                .execute(&self.pool)
                .await?;
                self.get_service(service).await
            }

            async fn sql_get_service(&self, service: &ServiceName) -> StoreResult<Service> {
                let row = sqlx::query("SELECT id, name, admin, created FROM services WHERE name = $1")
                    .bind(service.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::not_found("service", service.as_str()))?;
                self.service_from_row(&row).await
            }

            async fn sql_list_services(&self) -> StoreResult<Vec<Service>> {
                let rows =
                    sqlx::query(concat!("SELECT id, name, admin, created FROM services ORDER BY name ", $byte_order))
                        .fetch_all(&self.pool)
                        .await?;
                let mut services = Vec::with_capacity(rows.len());
                for row in &rows {
                    services.push(self.service_from_row(row).await?);
                }
                Ok(services)
            }

            async fn sql_delete_service(&self, service: &ServiceName) -> StoreResult<()> {
                let _auth_change = self.auth_change();
                self.delete_one("DELETE FROM services WHERE name = $1", "service", service.as_str()).await
            }
        }
    };
}

pub(crate) use services_sql;
