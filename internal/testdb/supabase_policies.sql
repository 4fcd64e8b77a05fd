-- LodgeTix's tables as the Data API serves them: row security on, and a
-- signed-in member of an organisation may read and write that
-- organisation's events and tickets.
CREATE TABLE IF NOT EXISTS organisation_members (
    organisation_id uuid NOT NULL REFERENCES organisations,
    user_id uuid NOT NULL,
    PRIMARY KEY (organisation_id, user_id)
);
ALTER TABLE organisations ENABLE ROW LEVEL SECURITY;
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_tickets ENABLE ROW LEVEL SECURITY;
ALTER TABLE organisation_members ENABLE ROW LEVEL SECURITY;

CREATE POLICY members_read_own ON organisation_members FOR SELECT TO authenticated
    USING (user_id = auth.uid());
CREATE POLICY members_manage_org ON organisations TO authenticated
    USING (organisation_id IN (SELECT organisation_id FROM organisation_members WHERE user_id = auth.uid()));
CREATE POLICY members_manage_events ON events TO authenticated
    USING (organisation_id IN (SELECT organisation_id FROM organisation_members WHERE user_id = auth.uid()))
    WITH CHECK (organisation_id IN (SELECT organisation_id FROM organisation_members WHERE user_id = auth.uid()));
CREATE POLICY members_manage_tickets ON event_tickets TO authenticated
    USING (event_id IN (SELECT e.event_id FROM events e
                        JOIN organisation_members m ON m.organisation_id = e.organisation_id
                        WHERE m.user_id = auth.uid()))
    WITH CHECK (event_id IN (SELECT e.event_id FROM events e
                             JOIN organisation_members m ON m.organisation_id = e.organisation_id
                             WHERE m.user_id = auth.uid()));
CREATE POLICY anyone_reads_published ON events FOR SELECT TO anon USING (is_published);
