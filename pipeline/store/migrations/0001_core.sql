-- ERIOP core schema (docs/database-design.md, "Core Entities").
-- Tables the design references without defining (roles, permissions, units,
-- channels, assignments) are defined minimally, as the ERD implies.

CREATE EXTENSION IF NOT EXISTS postgis;

CREATE TABLE IF NOT EXISTS agencies (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name            VARCHAR(255) NOT NULL,
    code            VARCHAR(20) NOT NULL UNIQUE,
    type            VARCHAR(50) NOT NULL,
    jurisdiction    VARCHAR(255),
    parent_id       UUID REFERENCES agencies(id),
    contact_email   VARCHAR(255),
    contact_phone   VARCHAR(20),
    address         JSONB,
    settings        JSONB NOT NULL DEFAULT '{}',
    status          VARCHAR(20) NOT NULL DEFAULT 'active',
    created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    CONSTRAINT agencies_type_check CHECK (type IN ('police', 'fire', 'ems', 'swat', 'dispatch', 'military', 'other'))
);
CREATE INDEX IF NOT EXISTS idx_agencies_code ON agencies(code);
CREATE INDEX IF NOT EXISTS idx_agencies_type ON agencies(type);
CREATE INDEX IF NOT EXISTS idx_agencies_parent ON agencies(parent_id);

CREATE TABLE IF NOT EXISTS roles (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name            VARCHAR(100) NOT NULL UNIQUE,
    description     TEXT,
    agency_id       UUID REFERENCES agencies(id),
    created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS permissions (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    code            VARCHAR(100) NOT NULL UNIQUE,  -- e.g. "alerts:acknowledge"
    description     TEXT,
    created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS role_permissions (
    role_id         UUID NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    permission_id   UUID NOT NULL REFERENCES permissions(id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, permission_id)
);

CREATE TABLE IF NOT EXISTS users (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email           VARCHAR(255) NOT NULL UNIQUE,
    password_hash   VARCHAR(255) NOT NULL,
    first_name      VARCHAR(100) NOT NULL,
    last_name       VARCHAR(100) NOT NULL,
    phone           VARCHAR(20),
    badge_number    VARCHAR(50),
    agency_id       UUID REFERENCES agencies(id),
    status          VARCHAR(20) NOT NULL DEFAULT 'active',
    mfa_enabled     BOOLEAN NOT NULL DEFAULT FALSE,
    mfa_secret      VARCHAR(255),
    last_login      TIMESTAMP WITH TIME ZONE,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until    TIMESTAMP WITH TIME ZONE,
    created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    CONSTRAINT users_status_check CHECK (status IN ('active', 'inactive', 'suspended', 'pending'))
);
CREATE INDEX IF NOT EXISTS idx_users_email ON users(email);
CREATE INDEX IF NOT EXISTS idx_users_agency ON users(agency_id);
CREATE INDEX IF NOT EXISTS idx_users_status ON users(status);

CREATE TABLE IF NOT EXISTS user_roles (
    user_id         UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id         UUID NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);

CREATE TABLE IF NOT EXISTS units (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agency_id       UUID NOT NULL REFERENCES agencies(id),
    name            VARCHAR(255) NOT NULL,
    call_sign       VARCHAR(50) NOT NULL,
    type            VARCHAR(50) NOT NULL DEFAULT 'other',
    status          VARCHAR(30) NOT NULL DEFAULT 'available',
    created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    CONSTRAINT units_call_sign_unique UNIQUE (agency_id, call_sign)
);
CREATE INDEX IF NOT EXISTS idx_units_agency ON units(agency_id);

CREATE TABLE IF NOT EXISTS resources (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    type            VARCHAR(30) NOT NULL,
    subtype         VARCHAR(50),
    name            VARCHAR(255) NOT NULL,
    identifier      VARCHAR(100) NOT NULL,
    agency_id       UUID NOT NULL REFERENCES agencies(id),
    unit_id         UUID REFERENCES units(id),
    status          VARCHAR(30) NOT NULL DEFAULT 'available',
    current_location GEOGRAPHY(POINT, 4326),
    capabilities    VARCHAR(50)[] DEFAULT '{}',
    specifications  JSONB NOT NULL DEFAULT '{}',
    last_maintenance TIMESTAMP WITH TIME ZONE,
    created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    CONSTRAINT resources_type_check CHECK (type IN ('personnel', 'vehicle', 'equipment')),
    CONSTRAINT resources_status_check CHECK (status IN (
        'available', 'assigned', 'en_route', 'on_scene',
        'off_duty', 'maintenance', 'out_of_service'
    ))
);
CREATE INDEX IF NOT EXISTS idx_resources_type ON resources(type);
CREATE INDEX IF NOT EXISTS idx_resources_agency ON resources(agency_id);
CREATE INDEX IF NOT EXISTS idx_resources_unit ON resources(unit_id);
CREATE INDEX IF NOT EXISTS idx_resources_status ON resources(status);
CREATE INDEX IF NOT EXISTS idx_resources_location ON resources USING GIST(current_location);
-- Ingest resolves GPS identifiers and Axis serials (case-insensitively) to resources.
CREATE INDEX IF NOT EXISTS idx_resources_identifier ON resources(identifier);
CREATE INDEX IF NOT EXISTS idx_resources_identifier_upper ON resources(upper(identifier));

-- alerts and incidents reference each other: alerts first, the FK to incidents after.
CREATE TABLE IF NOT EXISTS alerts (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    external_id     VARCHAR(255),
    source          VARCHAR(100) NOT NULL,
    type            VARCHAR(50) NOT NULL,
    severity        INTEGER NOT NULL DEFAULT 3,
    status          VARCHAR(30) NOT NULL DEFAULT 'new',
    title           VARCHAR(255) NOT NULL,
    description     TEXT,
    location        GEOGRAPHY(POINT, 4326),
    address         JSONB,
    raw_payload     JSONB,
    processed_at    TIMESTAMP WITH TIME ZONE,
    acknowledged_by UUID REFERENCES users(id),
    acknowledged_at TIMESTAMP WITH TIME ZONE,
    incident_id     UUID,
    metadata        JSONB NOT NULL DEFAULT '{}',
    received_at     TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    CONSTRAINT alerts_severity_check CHECK (severity BETWEEN 1 AND 5),
    CONSTRAINT alerts_status_check CHECK (status IN (
        'new', 'processing', 'acknowledged', 'converted',
        'dismissed', 'expired'
    ))
);
CREATE INDEX IF NOT EXISTS idx_alerts_source ON alerts(source);
CREATE INDEX IF NOT EXISTS idx_alerts_status ON alerts(status);
CREATE INDEX IF NOT EXISTS idx_alerts_severity ON alerts(severity);
CREATE INDEX IF NOT EXISTS idx_alerts_received ON alerts(received_at DESC);
-- The design's idx_alerts_external, made UNIQUE: deduplication is
-- INSERT ... ON CONFLICT (source, external_id) DO NOTHING.
CREATE UNIQUE INDEX IF NOT EXISTS idx_alerts_external ON alerts(source, external_id);
-- Restores find the newest open alert with the same match key.
CREATE INDEX IF NOT EXISTS idx_alerts_open_match ON alerts ((metadata->>'match_key'), received_at DESC)
    WHERE metadata->>'restored_at' IS NULL;
CREATE INDEX IF NOT EXISTS idx_alerts_match ON alerts ((metadata->>'match_key'), received_at DESC);
CREATE INDEX IF NOT EXISTS idx_alerts_location ON alerts USING GIST(location);

CREATE TABLE IF NOT EXISTS incidents (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    incident_number VARCHAR(50) NOT NULL UNIQUE,
    type            VARCHAR(50) NOT NULL,
    category        VARCHAR(50) NOT NULL,
    priority        INTEGER NOT NULL DEFAULT 3,
    status          VARCHAR(30) NOT NULL DEFAULT 'new',
    title           VARCHAR(255) NOT NULL,
    description     TEXT,
    location        GEOGRAPHY(POINT, 4326),
    address         JSONB,
    reported_by     UUID REFERENCES users(id),
    assigned_to     UUID REFERENCES units(id),
    agency_id       UUID NOT NULL REFERENCES agencies(id),
    parent_id       UUID REFERENCES incidents(id),
    source_alert_id UUID REFERENCES alerts(id),
    metadata        JSONB NOT NULL DEFAULT '{}',
    created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    resolved_at     TIMESTAMP WITH TIME ZONE,
    closed_at       TIMESTAMP WITH TIME ZONE,
    CONSTRAINT incidents_priority_check CHECK (priority BETWEEN 1 AND 5),
    CONSTRAINT incidents_status_check CHECK (status IN (
        'new', 'assigned', 'en_route', 'on_scene',
        'resolved', 'closed', 'cancelled'
    ))
);
CREATE INDEX IF NOT EXISTS idx_incidents_number ON incidents(incident_number);
CREATE INDEX IF NOT EXISTS idx_incidents_status ON incidents(status);
CREATE INDEX IF NOT EXISTS idx_incidents_priority ON incidents(priority);
CREATE INDEX IF NOT EXISTS idx_incidents_agency ON incidents(agency_id);
CREATE INDEX IF NOT EXISTS idx_incidents_created ON incidents(created_at DESC);
CREATE INDEX IF NOT EXISTS idx_incidents_location ON incidents USING GIST(location);
-- Partial index: active incidents only.
CREATE INDEX IF NOT EXISTS idx_incidents_active
    ON incidents(priority, created_at DESC)
    WHERE status NOT IN ('closed', 'cancelled');
-- Covering index: the incident list without table lookups.
CREATE INDEX IF NOT EXISTS idx_incidents_list
    ON incidents(agency_id, status, created_at DESC)
    INCLUDE (incident_number, title, priority);

ALTER TABLE alerts ADD CONSTRAINT alerts_incident_id_fkey
    FOREIGN KEY (incident_id) REFERENCES incidents(id);

CREATE TABLE IF NOT EXISTS assignments (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    incident_id     UUID NOT NULL REFERENCES incidents(id),
    unit_id         UUID REFERENCES units(id),
    resource_id     UUID REFERENCES resources(id),
    alert_id        UUID REFERENCES alerts(id),
    status          VARCHAR(30) NOT NULL DEFAULT 'assigned',
    assigned_by     UUID REFERENCES users(id),
    assigned_at     TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    released_at     TIMESTAMP WITH TIME ZONE,
    CONSTRAINT assignments_target_check CHECK (unit_id IS NOT NULL OR resource_id IS NOT NULL),
    CONSTRAINT assignments_status_check CHECK (status IN (
        'assigned', 'en_route', 'on_scene', 'released', 'cancelled'
    ))
);
CREATE INDEX IF NOT EXISTS idx_assignments_incident ON assignments(incident_id);
CREATE INDEX IF NOT EXISTS idx_assignments_unit ON assignments(unit_id);
CREATE INDEX IF NOT EXISTS idx_assignments_resource ON assignments(resource_id);

CREATE TABLE IF NOT EXISTS channels (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name            VARCHAR(255) NOT NULL,
    type            VARCHAR(30) NOT NULL DEFAULT 'group',
    agency_id       UUID REFERENCES agencies(id),
    incident_id     UUID REFERENCES incidents(id),
    created_by      UUID REFERENCES users(id),
    created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    archived_at     TIMESTAMP WITH TIME ZONE,
    CONSTRAINT channels_type_check CHECK (type IN ('direct', 'group', 'incident', 'broadcast'))
);
CREATE INDEX IF NOT EXISTS idx_channels_agency ON channels(agency_id);
CREATE INDEX IF NOT EXISTS idx_channels_incident ON channels(incident_id);

CREATE TABLE IF NOT EXISTS messages (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    channel_id      UUID NOT NULL REFERENCES channels(id),
    sender_id       UUID NOT NULL REFERENCES users(id),
    message_type    VARCHAR(30) NOT NULL DEFAULT 'text',
    content         TEXT NOT NULL,
    content_encrypted BYTEA,
    attachments     JSONB DEFAULT '[]',
    reply_to        UUID REFERENCES messages(id),
    status          VARCHAR(20) NOT NULL DEFAULT 'sent',
    priority        VARCHAR(20) NOT NULL DEFAULT 'normal',
    metadata        JSONB NOT NULL DEFAULT '{}',
    created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    edited_at       TIMESTAMP WITH TIME ZONE,
    deleted_at      TIMESTAMP WITH TIME ZONE,
    CONSTRAINT messages_type_check CHECK (message_type IN ('text', 'alert', 'status', 'file', 'location')),
    CONSTRAINT messages_priority_check CHECK (priority IN ('low', 'normal', 'high', 'urgent'))
);
CREATE INDEX IF NOT EXISTS idx_messages_channel ON messages(channel_id);
CREATE INDEX IF NOT EXISTS idx_messages_sender ON messages(sender_id);
CREATE INDEX IF NOT EXISTS idx_messages_created ON messages(created_at DESC);
CREATE INDEX IF NOT EXISTS idx_messages_channel_created ON messages(channel_id, created_at DESC);

-- Messages older than their 2-year retention move here (no FKs: the archive
-- outlives the channels and users it names).
CREATE TABLE IF NOT EXISTS messages_archive (
    LIKE messages INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    archived_at     TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS idx_messages_archive_created ON messages_archive(created_at DESC);
